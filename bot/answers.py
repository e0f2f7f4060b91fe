"""One function per user action: call the core once, render the answer into a Reply.

Both the slash commands and ``layerpeek-bot preview`` call these, so what the preview prints
is what the channel sees. No Discord I/O here: the callers defer, send and edit.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from layerpeek.bot import discord_limits as limits
from layerpeek.bot import render
from layerpeek.bot.chart import layer_chart
from layerpeek.bot.ratelimit import RateLimits
from layerpeek.bot.reply import Reply
from layerpeek.bot.scope import Scope
from layerpeek.bot.settings import BotSettings
from layerpeek.bot.state import StateStore
from layerpeek.bot.views import links_view, peek_view, result_pages
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.filehead import read_head
from layerpeek.core.fs.find import FindSpec
from layerpeek.core.image.resolve import ResolvedImage, image_report
from layerpeek.core.layers.progress import ProgressCallback
from layerpeek.core.models import EntryPage, ImageReport
from layerpeek.core.paging import last_start
from layerpeek.core.service import Layerpeek
from layerpeek.core.text import human_size
from layerpeek.links.endpoint import attachment_name

EXPIRED = "these buttons have expired (or the bot forgot them); run the command again"
OTHER_KIND = "these buttons belong to another kind of message"
"""A press whose stored state is another answer's: a button's id names the state."""


@dataclass
class BotContext:
    """What every answer needs; owned by the bot's setup_hook (or the preview command)."""

    peek: Layerpeek
    state: StateStore
    settings: BotSettings
    limits: RateLimits


@dataclass(frozen=True)
class PeekState:
    """What a /peek message's buttons refer to: the image pinned by digest, and its report."""

    pinned: str
    report: ImageReport

    def dump(self) -> dict[str, Any]:
        return {"pinned": self.pinned, "report": self.report.model_dump(mode="json")}

    @classmethod
    def load(cls, data: dict[str, Any]) -> PeekState:
        if "pinned" not in data:
            raise LayerpeekError(OTHER_KIND)
        return cls(data["pinned"], ImageReport.model_validate(data["report"]))


def pinned(image: ResolvedImage) -> str:
    """The platform manifest by digest: later pages show the bytes the first page showed."""
    return f"{image.reference.name}@{image.manifest.digest}"


# -- links ------------------------------------------------------------------------------------


def link_url(
    ctx: BotContext, reference: str, layer: int | None, path: str | None, user: int
) -> str | None:
    """A signed download URL, or None when links are off or the URL is too long for a button."""
    if not ctx.settings.links_enabled:
        return None
    url = ctx.settings.links.signed(reference, layer, path, user, time.time()).url
    return url if len(url) <= limits.LINK_URL else None


def _layer_links(ctx: BotContext, state: PeekState, layer: int | None, user: int) -> dict[str, str]:
    """A download button for the layer on show, unless the endpoint would refuse the link:
    a size that is not positive (a wrong manifest) or over LAYERPEEK_LINK_MAX_BYTES."""
    if layer is None:
        return {}
    size = state.report.layers[layer].size
    if not 0 < size <= ctx.settings.links.max_bytes:
        return {}
    url = link_url(ctx, state.pinned, layer, None, user)
    return {f"Download layer {layer} ({human_size(size)})": url} if url else {}


# -- /peek and its pages ----------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """One page of a listing and where it is: its number and the last page number, if known."""

    page: EntryPage
    scope: Scope
    number: int
    last: int | None


def _peek_reply(ctx: BotContext, key: str, state: PeekState, listing: Listing, user: int) -> Reply:
    report = state.report
    embeds = [
        render.summary_embed(report, chart=True),
        render.listing_embed(
            listing.page,
            listing.scope.describe(len(report.layers)),
            listing.number,
            listing.last,
            per_layer=listing.scope.layer is None and not listing.scope.merged,
        ),
    ]
    links = _layer_links(ctx, state, listing.scope.layer, user)
    has_next = not listing.page.complete
    view = peek_view(key, report.layers, listing.scope, listing.number, has_next, links)
    return Reply(embeds=embeds, view=view)


async def peek(
    ctx: BotContext,
    user: int,
    image: str,
    platform: str | None = None,
    layer: int | None = None,
    private: bool = False,
    on_progress: ProgressCallback | None = None,
) -> Reply:
    """The summary, the chart and the first page of the listing, as soon as it is known."""
    resolved = await ctx.peek.resolve(image, platform)
    scope = Scope(layer=resolved.layer(layer) if layer is not None else None)
    state = PeekState(pinned(resolved), image_report(resolved))
    key = await ctx.state.put(state.dump())
    listing = await _listing(ctx, resolved, scope, 0, "f", on_progress)
    chart = await anyio.to_thread.run_sync(layer_chart, state.report)
    reply = _peek_reply(ctx, key, state, listing, user)
    reply.files = {render.CHART_NAME: chart}
    reply.ephemeral = private
    return reply


async def _merged(ctx: BotContext, image: ResolvedImage, number: int, nav: str) -> Listing:
    """The merged view knows its total, so the last page needs no separate count."""
    size = ctx.settings.page_size
    merged = await ctx.peek.merged_listing(image, number * size, size)
    last = last_start(merged.total, size) // size
    if nav == "l" and number != last:
        return await _merged(ctx, image, last, nav)
    page = EntryPage(
        entries=merged.entries,
        next_start=merged.next_start,
        complete=not merged.next_start,
        problems=merged.problems,
    )
    return Listing(page, Scope(merged=True), number, last)


async def _listing(
    ctx: BotContext,
    image: ResolvedImage,
    scope: Scope,
    number: int,
    nav: str,
    on_progress: ProgressCallback | None = None,
) -> Listing:
    """Page ``number`` of ``scope`` (the last page for ``nav == "l"``, read in one pass)."""
    if scope.merged:
        return await _merged(ctx, image, number, nav)
    size = ctx.settings.page_size
    listing = ctx.peek.list_page
    page = await listing(image, scope.layer, number * size, size, on_progress, last=nav == "l")
    number = page.start // size
    if not page.entries and number > 0:
        raise LayerpeekError(f"page {number + 1} is past the end of this listing")
    return Listing(page, scope, number, number if page.complete else None)


async def page(
    ctx: BotContext,
    user: int,
    data: dict[str, Any],
    key: str,
    scope: Scope,
    number: int,
    nav: str,
) -> Reply:
    """A button's page of the listing a /peek message shows."""
    state = PeekState.load(data)
    image = await ctx.peek.resolve(state.pinned)
    if scope.layer is not None:
        image.layer(scope.layer)
    listing = await _listing(ctx, image, scope, number, nav)
    return _peek_reply(ctx, key, state, listing, user)


async def find_in(ctx: BotContext, data: dict[str, Any], scope: Scope, pattern: str) -> Reply:
    """ "Find" under a listing: matches in the merged view, every layer, or just one layer,
    in pages of their own."""
    FindSpec.parse(pattern)  # a bad pattern is refused before anything is stored
    state = PeekState.load(data)
    search = {
        "find": state.pinned,
        "reference": state.report.reference,
        "pattern": pattern,
        "regex": False,
        "merged": scope.merged,
        "layer": scope.layer,
    }
    return await find_page(ctx, search, await ctx.state.put(search), 0)


# -- the other commands -----------------------------------------------------------------------


async def history(
    ctx: BotContext, user: int, image: str, platform: str | None = None, private: bool = False
) -> Reply:
    report = await ctx.peek.inspect(image, platform)
    return Reply(embeds=[render.history_embed(report)], ephemeral=private)


async def tags(ctx: BotContext, user: int, repository: str, private: bool = False) -> Reply:
    found = await ctx.peek.tags(repository)
    return Reply(embeds=[render.tags_embed(repository, found)], ephemeral=private)


async def cat(
    ctx: BotContext,
    user: int,
    image: str,
    path: str,
    layer: int | None = None,
    private: bool = False,
) -> Reply:
    """The file's start in an embed, the whole file attached when it is small enough, and a
    download link when links are on."""
    resolved = await ctx.peek.resolve(image)
    return await _cat(ctx, user, resolved, path, layer, private)


async def _cat(
    ctx: BotContext, user: int, image: ResolvedImage, path: str, layer: int | None, private: bool
) -> Reply:
    index = image.layer(layer) if layer is not None else None
    copy = await ctx.peek.locate(image, path, index)
    # The first attach_max_bytes, reading no further; the whole file is attached if that is all.
    head = await read_head(ctx.peek.read(image, copy), ctx.settings.attach_max_bytes)
    data, complete = head.data, head.complete
    # The title names the file read: etc/os-release → usr/lib/os-release.
    embed = render.cat_embed(str(image.reference), copy.shown, index, data, complete)
    files = {attachment_name(path): data} if complete else {}
    url = link_url(ctx, pinned(image), index, path, user)
    links = {"Download file": url} if url else {}
    return Reply(embeds=[embed], view=links_view(links), files=files, ephemeral=private)


# -- the merged filesystem: find, diff, triage ---------------------------------------------------


def _searched(search: dict[str, Any]) -> str:
    """What a find searched, in words: what its answer says it searched."""
    if search["merged"]:
        return "the merged filesystem"
    return "every layer" if search.get("layer") is None else f"layer {search['layer']}"


def page_span(number: int, total: int, size: int) -> tuple[int, int, str]:
    """The page to show (``number``, or the last one if past it), the last page, and how the
    title names the page (nothing when there is only one)."""
    last = max(0, (total - 1) // size)
    number = min(number, last)
    return number, last, f"page {number + 1} of {last + 1}" if last else ""


async def find(
    ctx: BotContext,
    user: int,
    image: str,
    pattern: str,
    regex: bool = False,
    merged: bool = False,
    private: bool = False,
) -> Reply:
    """The first page of the matches of a glob or regex: in every layer, as the CLI and the
    MCP tool search (a file deleted later but still shipped is found), or in the merged view."""
    FindSpec.parse(pattern, regex=regex)  # a bad pattern is refused before the registry is asked
    resolved = await ctx.peek.resolve(image)
    search = {
        "find": pinned(resolved),
        "reference": str(resolved.reference),
        "pattern": pattern,
        "regex": regex,
        "merged": merged,
        "layer": None,
    }
    reply = await find_page(ctx, search, await ctx.state.put(search), 0)
    reply.ephemeral = private
    return reply


async def find_page(ctx: BotContext, data: dict[str, Any], key: str, number: int) -> Reply:
    """Page ``number`` of a stored search (a /find or a Find button's), with its buttons."""
    image = await ctx.peek.resolve(data["find"])
    spec = FindSpec.parse(data["pattern"], regex=data["regex"])
    found = await ctx.peek.find(image, spec, merged=data["merged"])
    matches = [m for m in found.matches if data["layer"] in (None, m.layer)]
    size = ctx.settings.page_size
    number, last, page = page_span(number, len(matches), size)
    shown = found.model_copy(
        update={
            "reference": data["reference"],
            "matches": matches[number * size : (number + 1) * size],
            "total": len(matches),
        }
    )
    embed = render.find_embed(shown, _searched(data), page)
    return Reply(embeds=[embed], view=result_pages(key, number, last))


async def diff(ctx: BotContext, user: int, base: str, target: str, private: bool = False) -> Reply:
    """The first page of what changed from ``base`` to ``target`` in the merged filesystems."""
    return await compared(ctx, "diff", base, target, diff_page, private)


PageOf = Callable[[BotContext, dict[str, Any], str, int], Awaitable[Reply]]


async def compared(
    ctx: BotContext, kind: str, base: str, target: str, page_of: PageOf, private: bool
) -> Reply:
    """Page 0 of a comparison of ``base`` and ``target`` (``kind``: files or packages), both
    kept pinned by digest, so its buttons page the same two images after a restart."""
    first, second = await ctx.peek.resolve(base), await ctx.peek.resolve(target)
    data = {kind: [pinned(first), pinned(second)], "names": [base, target]}
    reply = await page_of(ctx, data, await ctx.state.put(data), 0)
    reply.ephemeral = private
    return reply


async def diff_page(ctx: BotContext, data: dict[str, Any], key: str, number: int) -> Reply:
    """Page ``number`` of a stored diff: its counts, then a page of its paths."""
    before, after = data["diff"]
    report = await ctx.peek.diff(await ctx.peek.resolve(before), await ctx.peek.resolve(after))
    report = report.model_copy(update=dict(zip("ab", data["names"], strict=True)))
    size = ctx.settings.page_size
    total = len(report.added) + len(report.removed) + len(report.changed)
    number, last, page = page_span(number, total, size)
    embed = render.diff_embed(report, number * size, size, page)
    return Reply(embeds=[embed], view=result_pages(key, number, last))


async def triage(
    ctx: BotContext, user: int, image: str, platform: str | None = None, private: bool = False
) -> Reply:
    """Secrets, deleted secrets, setuid and writable paths, the user, the OS, big files."""
    report = await ctx.peek.triage(await ctx.peek.resolve(image, platform))
    return Reply(embeds=[render.triage_embed(report)], ephemeral=private)
