"""One answer of the bot, how it is sent, and the exact JSON payload Discord would receive.

Commands build a Reply; sending and previewing share it, so ``layerpeek-bot preview`` prints
what a real answer contains — discord.py's own ``handle_message_parameters`` builds the
payload in both cases. Every message goes out with ``allowed_mentions`` none: an answer quotes
what an image and a user wrote, and neither may ping anyone.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

import discord
from discord.http import handle_message_parameters
from discord.utils import MISSING

NO_MENTIONS = discord.AllowedMentions.none()


@dataclass
class Reply:
    """Embeds, buttons and attachments (name → bytes) of one message."""

    embeds: list[discord.Embed] = field(default_factory=list)
    view: discord.ui.View | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    ephemeral: bool = False
    content: str | None = None

    def discord_files(self) -> list[discord.File]:
        """Fresh File objects (a File is a stream, spent once sent)."""
        return [discord.File(io.BytesIO(data), filename=name) for name, data in self.files.items()]


def payload(reply: Reply) -> dict[str, Any]:
    """The message JSON discord.py sends for ``reply`` (files appear as ``attachments``)."""
    flags = discord.MessageFlags(ephemeral=True) if reply.ephemeral else MISSING
    files = reply.discord_files()
    with handle_message_parameters(
        content=reply.content if reply.content is not None else MISSING,
        embeds=reply.embeds,
        view=reply.view if reply.view is not None else MISSING,
        files=files if files else MISSING,
        flags=flags,
        allowed_mentions=NO_MENTIONS,
    ) as params:
        if params.payload is not None:
            return params.payload
        assert params.multipart  # with files the JSON travels as the payload_json part
        payload: dict[str, Any] = json.loads(params.multipart[0]["value"])
        return payload


async def send(interaction: discord.Interaction[Any], reply: Reply) -> None:
    """Answer a command deferred with thinking=True: the answer replaces the thinking message
    (and any progress line written into it)."""
    await interaction.edit_original_response(
        content=reply.content,
        embeds=reply.embeds,
        view=reply.view,
        attachments=reply.discord_files(),
        allowed_mentions=NO_MENTIONS,
    )


async def edit(interaction: discord.Interaction[Any], reply: Reply) -> None:
    """Replace the embeds and buttons of the message a button belongs to (charts stay)."""
    await interaction.edit_original_response(
        embeds=reply.embeds, view=reply.view, allowed_mentions=NO_MENTIONS
    )


async def fail(interaction: discord.Interaction[Any], message: str) -> None:
    """One ephemeral line. After a public defer, the "thinking" message is public, so it is
    deleted first: the error is for the person who asked, not the channel."""
    if not interaction.response.is_done():
        await interaction.response.send_message(
            message, ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return
    if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
        # Already gone, or ephemeral: the followup below still reaches the user.
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
    await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)
