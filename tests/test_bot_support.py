"""Shared pieces of the bot tests: Discord's servers are the one thing faked, and only here.

- ``FakeInteraction``: the minimal surface the command callbacks use (response, followup,
  user, guild, client, namespace), recording every call, to invoke callbacks directly.
- ``RecordingAdapter`` + ``interaction_payload``: discord.py's private seams
  (``webhook.async_.async_context`` and ``ConnectionState.parse_interaction_create``) so a
  gateway INTERACTION_CREATE payload runs through discord.py's own dispatch with the HTTP
  calls recorded instead of sent. discord.py is pinned to 2.7 for these.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

from layerpeek.bot.app import LayerpeekBot
from layerpeek.bot.discord_limits import violations
from layerpeek.bot.reply import Reply, payload
from layerpeek.bot.settings import BotSettings
from layerpeek.core.settings import Settings

APPLICATION_ID = 1111
USER_ID = 2222
GUILD_ID = 3333
CHANNEL_ID = 4444
MESSAGE_ID = 5555


def allow_local_registry(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """On top of ``layerpeek_env``: what the guarded bot needs to reach the local registry,
    and a working directory without a stray ``.env``."""
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(workdir)


def sent_payload(call: dict[str, Any]) -> dict[str, Any]:
    """The message payload discord.py builds for recorded send/followup keyword arguments."""
    files = call.get("files") or call.get("attachments") or []
    names = {f.filename: f.fp.read() for f in files}
    reply = Reply(
        embeds=call.get("embeds", []),
        view=call.get("view"),
        files=names,
        ephemeral=call.get("ephemeral", False),
        content=call.get("content"),
    )
    return payload(reply)


def assert_within_limits(message: dict[str, Any]) -> None:
    assert violations(message) == []


# Discord's markdown (simple-markdown's rules): a backslash before any character that is not a
# letter, a digit or a space makes it text; code blocks and spans are shown as written.
_ESCAPED = re.compile(r"\\([^0-9A-Za-z\s])")
_CODE = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)


def shown(markdown: str) -> str:
    """The text Discord displays for ``markdown`` (its escapes taken out)."""
    return _ESCAPED.sub(r"\1", markdown)


def live_markdown(markdown: str) -> str:
    """What Discord still parses as syntax in ``markdown``: escaped characters and code are
    blanked out, so any link, mention or heading left in the result is one Discord would show.
    """
    return _ESCAPED.sub("\ufffc", _CODE.sub("\ufffc", markdown))


@dataclass
class FakeResponse:
    calls: list[tuple[str, dict[str, Any]]]
    done: bool = False
    type: discord.InteractionResponseType | None = None

    def is_done(self) -> bool:
        return self.done

    async def defer(self, **kwargs: Any) -> None:
        assert not self.done, "an interaction is answered once"
        self.done = True
        thinking = kwargs.get("thinking", False)
        self.type = discord.InteractionResponseType[
            "deferred_channel_message" if thinking else "deferred_message_update"
        ]
        self.calls.append(("defer", kwargs))

    async def send_message(self, content: str | None = None, **kwargs: Any) -> None:
        assert not self.done, "an interaction is answered once"
        self.done = True
        self.calls.append(("send_message", {"content": content, **kwargs}))


@dataclass
class FakeFollowup:
    calls: list[tuple[str, dict[str, Any]]]

    async def send(self, content: str | None = None, **kwargs: Any) -> None:
        self.calls.append(("followup", {"content": content, **kwargs} if content else kwargs))


@dataclass
class FakeInteraction:
    """What a command callback touches on discord.Interaction, recording each call."""

    client: Any
    namespace: Any = field(default_factory=SimpleNamespace)
    type: discord.InteractionType = discord.InteractionType.application_command
    guild_id: int | None = GUILD_ID
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.user = SimpleNamespace(id=USER_ID)
        self.response = FakeResponse(self.calls)
        self.followup = FakeFollowup(self.calls)

    async def delete_original_response(self) -> None:
        self.calls.append(("delete_original", {}))

    async def edit_original_response(self, **kwargs: Any) -> None:
        self.calls.append(("edit_original", kwargs))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for called, kwargs in self.calls if called == name]


class RecordingAdapter(AsyncWebhookAdapter):
    """discord.py's webhook adapter with the network replaced: every request is recorded
    (route and JSON payload) and answered with a minimal plausible body."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []

    async def request(self, route: Any, session: Any, *, payload: Any = None, **kw: Any) -> Any:
        multipart = kw.get("multipart")
        if payload is None and multipart:
            payload = json.loads(multipart[0]["value"])
        self.requests.append((route.method, route.path, payload))
        if route.path.endswith("/callback"):
            return {"interaction": {"id": "1", "type": 3}}
        return message_payload([], content="")


def user_payload(user_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
    }


def message_payload(components: list[dict[str, Any]], content: str = "") -> dict[str, Any]:
    """A message as the gateway sends it, sent by the bot, holding ``components``."""
    return {
        "id": str(MESSAGE_ID),
        "channel_id": str(CHANNEL_ID),
        "author": user_payload(APPLICATION_ID, "layerpeek"),
        "content": content,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": components,
    }


def interaction_payload(
    component: dict[str, Any], message: dict[str, Any], values: list[str] | None = None
) -> dict[str, Any]:
    """An INTERACTION_CREATE for a click on ``component`` of ``message`` (no guild, a DM)."""
    data: dict[str, Any] = {
        "custom_id": component["custom_id"],
        "component_type": component["type"],
    }
    if values is not None:
        data["values"] = values
    return {
        "id": "6666",
        "application_id": str(APPLICATION_ID),
        "type": 3,
        "token": "interaction-token",
        "version": 1,
        "attachment_size_limit": 10 << 20,
        "data": data,
        "channel": {"id": str(CHANNEL_ID), "type": 1, "recipients": []},
        "user": user_payload(USER_ID, "someone"),
        "message": message,
    }


def command_payload(name: str, user_id: int, **options: Any) -> dict[str, Any]:
    """An INTERACTION_CREATE for ``/name`` with string ``options``, typed by ``user_id`` in a
    DM: discord.py's tree looks the command up by name and runs its callback."""
    return {
        "id": "7777",
        "application_id": str(APPLICATION_ID),
        "type": 2,
        "token": f"interaction-token-{user_id}",
        "version": 1,
        "attachment_size_limit": 10 << 20,
        "data": {
            "id": "8888",
            "name": name,
            "type": 1,
            "options": [{"name": k, "type": 3, "value": v} for k, v in options.items()],
        },
        "channel": {"id": str(CHANNEL_ID), "type": 1, "recipients": []},
        "user": user_payload(user_id, f"user{user_id}"),
    }


@contextlib.asynccontextmanager
async def recorded_bot(
    settings: BotSettings,
) -> AsyncIterator[tuple[LayerpeekBot, RecordingAdapter]]:
    """A fresh process's bot as ``login`` leaves it (event loop set, setup_hook run), with
    discord.py's HTTP to Discord replaced by a recorder."""
    bot = LayerpeekBot(settings, Settings())
    await bot._async_setup_hook()
    await bot.setup_hook()
    adapter = RecordingAdapter()
    token = async_context.set(adapter)
    try:
        yield bot, adapter
    finally:
        async_context.reset(token)
        await bot.close()
