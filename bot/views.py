"""Navigation: the buttons and the layer select under a listing, apart from the page data.

Every interactive item is a DynamicItem whose custom_id carries all it needs — the state key
(see state.py), the listing scope and the target page — so a click on a message sent before a
restart is routed by discord.py's template match to a fresh item, with no view kept in memory.
The work itself is the bot's (the Navigator methods of ``interaction.client``).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

from layerpeek.bot import discord_limits as limits
from layerpeek.bot.render import layer_label
from layerpeek.bot.scope import PATTERN as SCOPE
from layerpeek.bot.scope import Scope
from layerpeek.bot.state import KEY_PATTERN
from layerpeek.core.models import LayerInfo

SELECT_WINDOW = 23  # 25 options: all layers, the merged filesystem, 23 layers around the current


class Navigator(Protocol):
    """What the bot offers its buttons (LayerpeekBot implements it)."""

    async def turn_page(
        self, interaction: discord.Interaction[Any], key: str, scope: Scope, page: int, nav: str
    ) -> None: ...

    async def choose_scope(
        self, interaction: discord.Interaction[Any], key: str, value: str
    ) -> None: ...

    async def ask_find(
        self, interaction: discord.Interaction[Any], key: str, scope: Scope
    ) -> None: ...

    async def run_find(
        self, interaction: discord.Interaction[Any], key: str, scope: Scope, pattern: str
    ) -> None: ...

    async def turn_result(
        self, interaction: discord.Interaction[Any], key: str, page: int
    ) -> None: ...


def _navigator(interaction: discord.Interaction[Any]) -> Navigator:
    navigator: Navigator = interaction.client
    return navigator


class PageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"lp:(?P<key>{KEY_PATTERN}):(?P<scope>{SCOPE}):(?P<page>\d{{1,7}}):(?P<nav>[fpnl])",
):
    """◀ ▶ and first/last. ``nav`` tells the buttons apart (two may target the same page) and
    ``l`` means "the last page", which is counted when pressed."""

    def __init__(
        self, key: str, scope: Scope, page: int, nav: str, label: str = "", disabled: bool = False
    ) -> None:
        self.key, self.scope, self.page, self.nav = key, scope, page, nav
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"lp:{key}:{scope.code}:{page}:{nav}",
                disabled=disabled,
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> PageButton:
        return cls(match["key"], Scope.parse(match["scope"]), int(match["page"]), match["nav"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _navigator(interaction).turn_page(
            interaction, self.key, self.scope, self.page, self.nav
        )


class ScopeSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=rf"lp:(?P<key>{KEY_PATTERN}):s",
):
    """Pick what to list: one layer, every layer, or the merged filesystem (page 1 again)."""

    def __init__(self, key: str, options: list[discord.SelectOption] | None = None) -> None:
        self.key = key
        super().__init__(
            discord.ui.Select(
                custom_id=f"lp:{key}:s",
                placeholder="Choose what to list",
                options=options or [discord.SelectOption(label="all layers", value="a")],
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ScopeSelect:
        return cls(match["key"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _navigator(interaction).choose_scope(interaction, self.key, self.item.values[0])


class FindButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"lp:(?P<key>{KEY_PATTERN}):(?P<scope>{SCOPE}):q",
):
    """ "Find in this layer": asks for a pattern in a modal, then answers with the matches."""

    def __init__(self, key: str, scope: Scope) -> None:
        self.key, self.scope = key, scope
        label = "Find in this layer" if scope.layer is not None else "Find…"
        super().__init__(
            discord.ui.Button(
                label=label, style=discord.ButtonStyle.primary, custom_id=f"lp:{key}:{scope.code}:q"
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> FindButton:
        return cls(match["key"], Scope.parse(match["scope"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _navigator(interaction).ask_find(interaction, self.key, self.scope)


class FindModal(discord.ui.Modal):
    """The pattern prompt. A modal lives a few minutes in one process, so it needs no state
    of its own beyond the key and scope it was opened for."""

    pattern: discord.ui.TextInput[FindModal] = discord.ui.TextInput(
        label="Glob (*.pem, etc/*.conf) or path", max_length=200
    )

    def __init__(self, key: str, scope: Scope, layer_count: int) -> None:
        title = limits.clip(f"Find in {scope.describe(layer_count)}", 45)  # Discord: 45 at most
        super().__init__(title=title, custom_id=f"lp:{key}:{scope.code}:m", timeout=600)
        self.key, self.scope = key, scope

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        pattern = self.pattern.value
        await _navigator(interaction).run_find(interaction, self.key, self.scope, pattern)


def _scope_options(layers: list[LayerInfo], scope: Scope) -> list[discord.SelectOption]:
    """Every layer, the merged filesystem, and a window of layers around the current one."""
    centre = scope.layer if scope.layer is not None else 0
    start = max(0, min(centre - SELECT_WINDOW // 2, len(layers) - SELECT_WINDOW))
    current = scope.code
    options = [
        discord.SelectOption(label="all layers, in order", value="a", default=current == "a"),
        discord.SelectOption(label="the merged filesystem", value="m", default=current == "m"),
    ]
    options += [
        discord.SelectOption(
            label=layer_label(layer.index, layer.created_by, layer.size),
            value=str(layer.index),
            default=str(layer.index) == current,
        )
        for layer in layers[start : start + SELECT_WINDOW]
    ]
    return options


def peek_view(
    key: str,
    layers: list[LayerInfo],
    scope: Scope,
    page: int,
    has_next: bool,
    links: dict[str, str],
) -> discord.ui.View:
    """⏮ ◀ ▶ ⏭ and find, the scope select, and download link buttons (label → URL)."""
    view = discord.ui.View(timeout=None)
    for label, target, nav, disabled in (
        ("⏮", 0, "f", page == 0),
        ("◀", max(page - 1, 0), "p", page == 0),
        ("▶", page + 1, "n", not has_next),
        ("⏭", 0, "l", not has_next),
    ):
        view.add_item(PageButton(key, scope, target, nav, label, disabled))
    view.add_item(FindButton(key, scope))
    select = ScopeSelect(key, _scope_options(layers, scope))
    select.row = 1
    view.add_item(select)
    for label, url in links.items():
        view.add_item(discord.ui.Button(label=label, url=url, row=2))
    return view


class ResultPageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"lpk:(?P<key>{KEY_PATTERN}):(?P<page>\d{{1,7}}):(?P<nav>[fpnl])",
):
    """⏮ ◀ ▶ ⏭ of an answer whose whole list is known when it is sent (/packages, /find,
    /diff, a Find button's matches): the stored state says which, and ⏭ aims at the last
    page directly. ``nav`` tells apart buttons aiming at one page."""

    def __init__(self, key: str, page: int, nav: str, label: str = "", disabled: bool = False):
        self.key, self.page = key, page
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"lpk:{key}:{page}:{nav}",
                disabled=disabled,
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ResultPageButton:
        return cls(match["key"], int(match["page"]), match["nav"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _navigator(interaction).turn_result(interaction, self.key, self.page)


def result_pages(key: str, page: int, last: int) -> discord.ui.View | None:
    """The page buttons of a result, or none when it fits on one page."""
    if last == 0:
        return None
    view = discord.ui.View(timeout=None)
    for label, target, nav, disabled in (
        ("⏮", 0, "f", page == 0),
        ("◀", max(page - 1, 0), "p", page == 0),
        ("▶", page + 1, "n", page >= last),
        ("⏭", last, "l", page >= last),
    ):
        view.add_item(ResultPageButton(key, target, nav, label, disabled))
    return view


def links_view(links: dict[str, str]) -> discord.ui.View | None:
    """Just link buttons (for /cat), or nothing when links are off."""
    if not links:
        return None
    view = discord.ui.View(timeout=None)
    for label, url in links.items():
        view.add_item(discord.ui.Button(label=label, url=url))
    return view
