"""``/packages image [filter]``: what an image has installed, a line a package with its
version and the layer that installed it, and a summary line a kind, in pages like /peek's.

The answer, its embed and its page buttons live here (``answers``, ``render`` and ``views``
hold the other commands'): one core call, the inventory, filtered by a name fragment. The
buttons carry a state key (the image pinned by digest, the filter), so any page is the same
image's however much later, and after a restart."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import discord

from layerpeek.bot import discord_limits as limits
from layerpeek.bot.answers import BotContext, pinned
from layerpeek.bot.render import COLOUR, LINE, _footer, _lines_within, untrusted, warnings
from layerpeek.bot.reply import Reply
from layerpeek.bot.state import KEY_PATTERN
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.packages.inventory import inventory
from layerpeek.core.packages.model import KINDS, Package, PackageReport
from layerpeek.core.text import human_size

UNREAD_SHOWN = 3


async def packages(
    ctx: BotContext,
    user: int,
    image: str,
    filter: str | None = None,
    platform: str | None = None,
    private: bool = False,
) -> Reply:
    """The first page of the installed packages of ``image`` whose names contain ``filter``."""
    resolved = await ctx.peek.resolve(image, platform)
    report = await inventory(ctx.peek, resolved)
    key = await ctx.state.put({"packages": pinned(resolved), "filter": filter or ""})
    reply = _reply(ctx, key, report, filter or "", 0)
    reply.ephemeral = private
    return reply


async def packages_page(ctx: BotContext, data: dict[str, Any], key: str, number: int) -> Reply:
    """A button's page of the packages a /packages message shows."""
    if "packages" not in data:
        raise LayerpeekError("these buttons belong to another kind of message")
    report = await inventory(ctx.peek, await ctx.peek.resolve(data["packages"]))
    return _reply(ctx, key, report, data.get("filter", ""), number)


def _reply(ctx: BotContext, key: str, report: PackageReport, filter: str, number: int) -> Reply:
    size = ctx.settings.page_size
    needle = filter.casefold()
    matching = [p for p in report.packages if needle in p.name.casefold()]
    last = max(0, (len(matching) - 1) // size)
    number = min(number, last)
    shown = matching[number * size : (number + 1) * size]
    embed = packages_embed(report, matching, filter, shown, f"page {number + 1} of {last + 1}")
    return Reply(embeds=[embed], view=pages_view(key, number, last))


def packages_embed(
    report: PackageReport,
    matching: list[Package],
    filter: str,
    shown: list[Package],
    where: str,
) -> discord.Embed:
    """Counts by kind first (they always fit), databases not read, then the page's lines."""
    counts = Counter(p.kind for p in matching)
    summary = [f"**{kind}** {counts[kind]} packages" for kind in KINDS if counts[kind]]
    head = "\n".join(summary) or "no packages found"
    if filter:
        head = f"names containing {untrusted(filter, 60)}:\n{head}"
    unread = [
        f"⚠️ not read: {untrusted(d.path, 120)} (layer {d.layer}): {untrusted(d.message, 160)}"
        for d in report.databases[:UNREAD_SHOWN]
    ]
    if len(report.databases) > UNREAD_SHOWN:
        unread.append(f"… and {len(report.databases) - UNREAD_SHOWN} more not read")
    top = warnings(report.problems) + "".join(line + "\n" for line in unread)
    lines = [limits.clip(_line(p), LINE) for p in shown]
    budget = limits.EMBED_DESCRIPTION - len(top) - len(head) - 40
    body = _lines_within(lines, budget, "… {} more on this page")
    listing = f"\n```\n{body}\n```" if body else ""
    cost = f"{human_size(report.bytes_read)} read from {report.files_read} files"
    footer = _footer(report.platform, report.digest) + untrusted(f" · {cost}", 80, "plain")
    return discord.Embed(
        title=untrusted(f"Packages of {report.reference}", 220) + f" · {where}",
        description=f"{top}{head}{listing}",
        colour=COLOUR,
    ).set_footer(text=footer)


class PackagePageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"lpk:(?P<key>{KEY_PATTERN}):(?P<page>\d{{1,7}}):(?P<nav>[fpnl])",
):
    """⏮ ◀ ▶ ⏭ of a /packages message; ``nav`` tells apart buttons aiming at one page."""

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
    ) -> PackagePageButton:
        return cls(match["key"], int(match["page"]), match["nav"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client: Any = interaction.client  # the bot (LayerpeekBot.turn_packages)
        await client.turn_packages(interaction, self.key, self.page)


def pages_view(key: str, page: int, last: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for label, target, nav, disabled in (
        ("⏮", 0, "f", page == 0),
        ("◀", max(page - 1, 0), "p", page == 0),
        ("▶", page + 1, "n", page >= last),
        ("⏭", last, "l", page >= last),
    ):
        view.add_item(PackagePageButton(key, target, nav, label, disabled))
    return view


def _line(package: Package) -> str:
    arch = f" {package.arch}" if package.arch else ""
    text = f"{package.kind:6} {package.name} {package.version}{arch} (layer {package.layer})"
    return untrusted(text, LINE, "code")
