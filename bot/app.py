"""The bot: owns its registry client, state store and link server for its whole life.

Following discord.py's ``examples/advanced_startup.py``, everything that needs the event loop
is made in ``setup_hook`` and released in ``close``. The registry client is guarded: image
references come from chat, so loopback and private addresses are refused unless allowed
(LAYERPEEK_ALLOW_PRIVATE).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import discord
import uvicorn

from layerpeek.bot import answers
from layerpeek.bot.answers import EXPIRED, OTHER_KIND, BotContext
from layerpeek.bot.commands import LayerpeekTree, add_commands, message_for
from layerpeek.bot.packages import changes_page, packages_page
from layerpeek.bot.ratelimit import RateLimits
from layerpeek.bot.reply import NO_MENTIONS, edit, fail, send
from layerpeek.bot.scope import Scope
from layerpeek.bot.settings import BotSettings
from layerpeek.bot.state import StateStore
from layerpeek.bot.views import FindButton, FindModal, PageButton, ResultPageButton, ScopeSelect
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings
from layerpeek.core.startup import open_service
from layerpeek.links.endpoint import LinkServer

log = logging.getLogger(__name__)
STATE_FILE = "bot-state.sqlite3"
PAGES = {
    "packages": packages_page,
    "find": answers.find_page,
    "diff": answers.diff_page,
    "package-diff": changes_page,
}
"""The answers whose pages ResultPageButton turns, by the key their stored state has."""


def make_context(peek: Layerpeek, settings: BotSettings) -> BotContext:
    """Everything an answer needs, around one service (``core.startup.open_service``)."""
    return BotContext(
        peek=peek,
        state=StateStore(peek.client.settings.cache_dir / STATE_FILE, settings.state_days),
        settings=settings,
        limits=RateLimits(
            settings.user_rate, settings.guild_rate, concurrent=settings.user_concurrent
        ),
    )


class LayerpeekBot(discord.Client):
    """A discord.Client with a command tree; slash commands only (default intents)."""

    ctx: BotContext

    def __init__(
        self,
        settings: BotSettings,
        core_settings: Settings | None = None,
        *,
        sync_global: bool = False,
    ) -> None:
        # The default for every message, the progress lines too (reply.NO_MENTIONS).
        super().__init__(intents=discord.Intents.default(), allowed_mentions=NO_MENTIONS)
        self.sync_global = sync_global
        self.settings = settings
        self.core_settings = core_settings or BotSettings.core()
        self.tree = LayerpeekTree(self)
        add_commands(self.tree)
        self._service = AsyncExitStack()
        self._links: uvicorn.Server | None = None
        self._links_task: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        peek = await self._service.enter_async_context(
            open_service(self.core_settings, guarded=True)
        )
        self.ctx = make_context(peek, self.settings)
        self.add_dynamic_items(PageButton, ScopeSelect, FindButton, ResultPageButton)
        if self.settings.links_enabled:
            await self._start_links()
        if self.settings.dev_guild is not None:
            guild = discord.Object(id=self.settings.dev_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        if self.sync_global:
            # Once per change of the commands, not on every start: Discord rate-limits it and
            # global commands take a while to reach every client.
            await self.tree.sync()

    async def _start_links(self) -> None:
        app = LinkServer(self.ctx.peek, self.settings.links).app
        config = uvicorn.Config(
            app, host=self.settings.link_host, port=self.settings.link_port, log_level="warning"
        )
        self._links = uvicorn.Server(config)
        self._links_task = asyncio.create_task(self._links.serve())

    async def close(self) -> None:
        if self._links is not None and self._links_task is not None:
            self._links.should_exit = True
            await self._links_task
        await self._service.aclose()
        await super().close()

    # -- what the buttons call (views.Navigator) ------------------------------------------------

    async def turn_page(
        self, interaction: discord.Interaction[Any], key: str, scope: Scope, page: int, nav: str
    ) -> None:
        await self._navigate(interaction, key, scope, page, nav)

    async def choose_scope(
        self, interaction: discord.Interaction[Any], key: str, value: str
    ) -> None:
        try:
            scope = Scope.parse(value)
        except ValueError:
            await fail(interaction, "that is not a layer of this image")
            return
        await self._navigate(interaction, key, scope, 0, "f")

    async def _state(
        self, interaction: discord.Interaction[Any], key: str
    ) -> dict[str, Any] | None:
        """The message's state, or None after telling the presser that it has expired."""
        data = await self.ctx.state.get(key)
        if data is None:
            await fail(interaction, EXPIRED)
        return data

    async def _navigate(
        self, interaction: discord.Interaction[Any], key: str, scope: Scope, page: int, nav: str
    ) -> None:
        """Anyone in the channel may page a /peek listing (``_pressed``), edited in place."""

        async def turn(data: dict[str, Any]) -> None:
            user = interaction.user.id
            await edit(interaction, await answers.page(self.ctx, user, data, key, scope, page, nav))

        await self._pressed(interaction, key, turn)

    async def turn_result(self, interaction: discord.Interaction[Any], key: str, page: int) -> None:
        """A page of /packages, /find or /diff (files or packages), as ``_navigate`` turns a
        /peek page."""

        async def turn(data: dict[str, Any]) -> None:
            render = next((PAGES[kind] for kind in PAGES if kind in data), None)
            if render is None:
                raise LayerpeekError(OTHER_KIND)
            await edit(interaction, await render(self.ctx, data, key, page))

        await self._pressed(interaction, key, turn)

    async def _pressed(
        self,
        interaction: discord.Interaction[Any],
        key: str,
        answer: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        thinking: bool = False,
    ) -> None:
        """A press on a component of message ``key``: check the presser's limits and the
        message's state, acknowledge, then ``answer`` with that state, all as one of the
        presser's running commands; a failure is one line to the presser."""
        try:
            with self.ctx.limits.working(interaction.user.id):
                self.ctx.limits.check(interaction.user.id, interaction.guild_id)
                data = await self._state(interaction, key)
                if data is None:
                    return
                await interaction.response.defer(thinking=thinking)
                await answer(data)
        except Exception as error:  # one line for the presser; message_for logs the unexpected
            await fail(interaction, message_for(error))

    async def ask_find(self, interaction: discord.Interaction[Any], key: str, scope: Scope) -> None:
        data = await self._state(interaction, key)
        if data is not None:
            layers = len(answers.PeekState.load(data).report.layers)
            await interaction.response.send_modal(FindModal(key, scope, layers))

    async def run_find(
        self, interaction: discord.Interaction[Any], key: str, scope: Scope, pattern: str
    ) -> None:
        """The matches as a new message in the channel (the listing stays as it was)."""

        async def found(data: dict[str, Any]) -> None:
            await send(interaction, await answers.find_in(self.ctx, data, scope, pattern))

        await self._pressed(interaction, key, found, thinking=True)
