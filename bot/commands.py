"""The slash commands: parse options, check rate limits, defer, call one answer, send it.

Each callback checks the references typed, then defers (Discord wants a response within 3 s
and a registry may take longer), then replaces the thinking message with the answer; /peek
writes how far its layer scan has come into that message meanwhile. Errors become one
ephemeral line (tree.on_error). A command counts as one of its user's running ones from the
limits check until its answer is sent, so a user whose commands wait on a slow registry
cannot start more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
from discord import app_commands

from layerpeek.bot import answers
from layerpeek.bot import discord_limits as limits
from layerpeek.bot import packages as package_answers
from layerpeek.bot.answers import BotContext
from layerpeek.bot.render import layer_label, untrusted
from layerpeek.bot.reply import fail, send
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.fs.find import MAX_PATTERN
from layerpeek.core.hints import with_hint
from layerpeek.core.layers.progress import Progress
from layerpeek.core.registry.reference import DOCKER_HUB, parse_reference
from layerpeek.core.text import human_size

log = logging.getLogger(__name__)
AUTOCOMPLETE_SECONDS = 2.5  # Discord drops autocomplete answers after 3 s
PROGRESS_SECONDS = 3.0


def context_of(interaction: discord.Interaction[Any]) -> BotContext:
    ctx: BotContext = interaction.client.ctx
    return ctx


@contextlib.asynccontextmanager
async def _working(
    interaction: discord.Interaction[Any], private: bool, *references: str
) -> AsyncIterator[BotContext]:
    """Limits first and the ``references`` typed (a refusal is instant, and only the user
    sees it: nothing public was posted yet), then the defer that buys 15 minutes; the block
    runs as one of the user's running commands."""
    ctx = context_of(interaction)
    with ctx.limits.working(interaction.user.id):
        ctx.limits.check(interaction.user.id, interaction.guild_id)
        for reference in references:
            parse_reference(reference, default_tag=None)
        await interaction.response.defer(thinking=True, ephemeral=private)
        yield ctx


class ScanProgress:
    """The core's progress callback, shown in the thinking message every few seconds.

    The core calls it on the event loop for each chunk read; an edit is a request to Discord,
    so at most one is in flight and they are spaced ``every`` seconds apart.
    """

    def __init__(
        self,
        interaction: discord.Interaction[Any],
        every: float = PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interaction = interaction
        self.every = every
        self.clock = clock
        self.last = clock()
        self.pending: asyncio.Task[Any] | None = None

    def __call__(self, progress: Progress) -> None:
        now = self.clock()
        if now - self.last < self.every or (self.pending and not self.pending.done()):
            return
        self.last = now
        of = f" of {human_size(progress.total)}" if progress.total else ""
        read = human_size(progress.bytes_read)
        line = f"reading the layer: {read}{of}, {progress.entries} entries so far…"
        self.pending = asyncio.create_task(self.interaction.edit_original_response(content=line))

    async def settle(self) -> None:
        """Wait for the edit in flight, so it cannot land after (and over) the answer."""
        if self.pending is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.pending


# -- autocomplete -------------------------------------------------------------------------------


def _choices(pairs: list[tuple[str, Any]]) -> list[app_commands.Choice[Any]]:
    """At most 25 choices; a name is clipped, but a value too long for Discord (100) cannot
    be, so that choice is left out."""
    fitting = [(n, v) for n, v in pairs if not isinstance(v, str) or len(v) <= limits.CHOICE_NAME]
    return [
        app_commands.Choice(name=untrusted(name, limits.CHOICE_NAME, "plain"), value=value)
        for name, value in fitting[: limits.CHOICES]
    ]


async def _quietly(work: Any) -> Any:
    """Autocomplete is a hint: a slow or failing registry yields no suggestions, not an error."""
    try:
        return await asyncio.wait_for(work, AUTOCOMPLETE_SECONDS)
    except (LayerpeekError, TimeoutError, ValueError):
        return None


async def complete_image(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """After ``repo:``, the repository's tags that start with what was typed."""
    name, colon, typed = current.rpartition(":")
    if not colon or "/" in typed or not name:
        return []
    tags = await _quietly(context_of(interaction).peek.tags(name)) or []
    return _choices([(f"{name}:{t}", f"{name}:{t}") for t in tags if t.startswith(typed)])


async def complete_platform(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    image = getattr(interaction.namespace, "image", None)
    if not image:
        return []
    resolved = await _quietly(context_of(interaction).peek.resolve(image))
    platforms = resolved.platforms if resolved else []
    return _choices([(p, p) for p in platforms if current in p])


async def complete_layer(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[int]]:
    namespace = interaction.namespace
    image = getattr(namespace, "image", None)
    if not image:
        return []
    platform = getattr(namespace, "platform", None)
    report = await _quietly(context_of(interaction).peek.inspect(image, platform))
    layers = report.layers if report else []
    pairs = [(layer_label(lay.index, lay.created_by, lay.size), lay.index) for lay in layers]
    return _choices([(label, i) for label, i in pairs if current.lower() in label.lower()])


async def complete_repository(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """A repository is typed in full; offer its normalised name as a check of the spelling."""
    try:
        ref = parse_reference(current, default_tag=None)
    except LayerpeekError:
        return []
    return _choices([(ref.name, current)]) if ref.tag is None and ref.digest is None else []


# -- the commands -------------------------------------------------------------------------------

IMAGE = "image reference, e.g. alpine:3.20 or ghcr.io/org/app@sha256:…"
PRIVATE = "show the answer only to you (default: the whole channel sees it)"


@app_commands.command(name="peek", description="Layers, build steps and files of an image")
@app_commands.describe(
    image=IMAGE,
    platform="os/arch[/variant] of a multi-platform image (default linux/amd64)",
    layer="list only this layer (0 is the base; negative counts from the top)",
    private=PRIVATE,
)
@app_commands.autocomplete(image=complete_image, platform=complete_platform)
@app_commands.autocomplete(layer=complete_layer)  # int choices: one choice type a call
async def peek(
    interaction: discord.Interaction[Any],
    image: str,
    platform: str | None = None,
    layer: int | None = None,
    private: bool = False,
) -> None:
    async with _working(interaction, private, image) as ctx:
        progress = ScanProgress(interaction)
        try:
            reply = await answers.peek(
                ctx, interaction.user.id, image, platform, layer, private, progress
            )
        finally:
            await progress.settle()
        await send(interaction, reply)


@app_commands.command(name="history", description="The build steps of an image, in order")
@app_commands.describe(
    image=IMAGE, platform="os/arch[/variant] (default linux/amd64)", private=PRIVATE
)
@app_commands.autocomplete(image=complete_image, platform=complete_platform)
async def history(
    interaction: discord.Interaction[Any],
    image: str,
    platform: str | None = None,
    private: bool = False,
) -> None:
    async with _working(interaction, private, image) as ctx:
        reply = await answers.history(ctx, interaction.user.id, image, platform, private)
        await send(interaction, reply)


@app_commands.command(name="cat", description="Show one file of an image, without pulling it")
@app_commands.describe(
    image=IMAGE,
    path="the file's path in the image, e.g. /etc/os-release",
    layer="read the copy this layer ships (default: the file as the image sees it)",
    private=PRIVATE,
)
@app_commands.autocomplete(image=complete_image)
@app_commands.autocomplete(layer=complete_layer)  # int choices: one choice type a call
async def cat(
    interaction: discord.Interaction[Any],
    image: str,
    path: str,
    layer: int | None = None,
    private: bool = False,
) -> None:
    async with _working(interaction, private, image) as ctx:
        reply = await answers.cat(ctx, interaction.user.id, image, path, layer, private)
        await send(interaction, reply)


@app_commands.command(name="tags", description="The tags of a repository")
@app_commands.describe(repository="repository without tag, e.g. library/alpine", private=PRIVATE)
@app_commands.autocomplete(repository=complete_repository)
async def tags(
    interaction: discord.Interaction[Any], repository: str, private: bool = False
) -> None:
    async with _working(interaction, private, repository) as ctx:
        await send(interaction, await answers.tags(ctx, interaction.user.id, repository, private))


# Discord itself refuses a longer pattern; the core refuses it again for every front end.
Pattern = app_commands.Range[str, 1, MAX_PATTERN]


@app_commands.command(name="find", description="Find paths by glob or regex in an image")
@app_commands.describe(
    image=IMAGE,
    pattern="a glob (*.pem matches any directory, etc/*.conf only there) or a regex",
    regex="treat the pattern as a regular expression (RE2: no backreferences or lookaround)",
    merged="search only the final filesystem (default: every layer, deleted files too)",
    private=PRIVATE,
)
@app_commands.autocomplete(image=complete_image)
async def find(
    interaction: discord.Interaction[Any],
    image: str,
    pattern: Pattern,
    regex: bool = False,
    merged: bool = False,
    private: bool = False,
) -> None:
    async with _working(interaction, private, image) as ctx:
        user = interaction.user.id
        reply = await answers.find(ctx, user, image, pattern, regex, merged, private)
        await send(interaction, reply)


@app_commands.command(
    name="diff", description="Files or packages added, removed and changed between images"
)
@app_commands.describe(
    base="the image before, e.g. app:1.0",
    target="the image after",
    packages="compare the installed packages instead of the files (reads both inventories)",
    private=PRIVATE,
)
@app_commands.autocomplete(base=complete_image, target=complete_image)
async def diff(
    interaction: discord.Interaction[Any],
    base: str,
    target: str,
    packages: bool = False,
    private: bool = False,
) -> None:
    async with _working(interaction, private, base, target) as ctx:
        user = interaction.user.id
        reply = await package_answers.diff(ctx, user, base, target, packages, private)
        await send(interaction, reply)


@app_commands.command(name="triage", description="Secrets, setuid files, user, OS and big files")
@app_commands.describe(
    image=IMAGE, platform="os/arch[/variant] (default linux/amd64)", private=PRIVATE
)
@app_commands.autocomplete(image=complete_image, platform=complete_platform)
async def triage(
    interaction: discord.Interaction[Any],
    image: str,
    platform: str | None = None,
    private: bool = False,
) -> None:
    async with _working(interaction, private, image) as ctx:
        reply = await answers.triage(ctx, interaction.user.id, image, platform, private)
        await send(interaction, reply)


@app_commands.command(name="packages", description="Installed packages of an image, by layer")
@app_commands.describe(
    image=IMAGE,
    filter="only packages whose name contains this",
    platform="os/arch[/variant] (default linux/amd64)",
    private=PRIVATE,
)
@app_commands.autocomplete(image=complete_image, platform=complete_platform)
async def packages(
    interaction: discord.Interaction[Any],
    image: str,
    filter: app_commands.Range[str, 1, 100] | None = None,
    platform: str | None = None,
    private: bool = False,
) -> None:
    async with _working(interaction, private, image) as ctx:
        user = interaction.user.id
        reply = await package_answers.packages(ctx, user, image, filter, platform, private)
        await send(interaction, reply)


COMMANDS: tuple[app_commands.Command[Any, ..., Any], ...] = (
    peek,
    history,
    cat,
    tags,
    find,
    diff,
    triage,
    packages,
)


class LayerpeekTree(app_commands.CommandTree[Any]):
    """The command tree; its on_error turns every failure into one ephemeral line."""

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        await fail(interaction, message_for(error, _typed(interaction)))


REFERENCE_OPTIONS = ("image", "base", "target", "repository")


def _typed(interaction: discord.Interaction[Any]) -> list[str]:
    """The references the user typed into the command's options."""
    values = (getattr(interaction.namespace, name, None) for name in REFERENCE_OPTIONS)
    return [value for value in values if isinstance(value, str)]


def as_typed(message: str, typed: list[str]) -> str:
    """``message`` with the Docker Hub names the core spelled out in full
    (``docker.io/library/alpine``) written as the user typed them (``alpine``)."""
    for text in typed:
        try:
            ref = parse_reference(text, default_tag=None)
        except LayerpeekError:
            continue
        if ref.registry != DOCKER_HUB:
            continue
        name = text.strip().partition("@")[0].partition(":")[0]  # a Docker Hub name has no port
        for spelled in (f"{DOCKER_HUB}/{ref.repository}", ref.repository):
            if spelled not in name:
                message = message.replace(spelled, name)
    return message


def message_for(error: BaseException, typed: list[str] | None = None) -> str:
    """The line a user sees: a LayerpeekError's own message, naming images as ``typed``,
    else a generic one (logged)."""
    cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    if isinstance(cause, LayerpeekError):
        message = as_typed(with_hint(cause, _option), typed or [])
        return untrusted(message, limits.CONTENT)
    if isinstance(cause, app_commands.AppCommandError):
        return untrusted(str(cause), limits.CONTENT)
    log.error("command failed", exc_info=cause)
    return "something went wrong inside the bot; the operator can find it in the log"


def _option(name: str, value: str | None = None) -> str:
    """How a hint names a command's options: ``layer:0``."""
    return f"the {name} option" if value is None else f"{name}:{value}"


def add_commands(tree: app_commands.CommandTree[Any]) -> None:
    for command in COMMANDS:
        tree.add_command(command)
