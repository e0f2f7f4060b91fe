"""Pages of listings: which entries a page holds, and where the next one starts.

Every front end pages the same listings: a layer's entries (or every layer's, bottom-up), a
filtered listing, the merged filesystem, a report's rows. This module answers with the page's
data and its position; how a reader moves between pages (a cursor, a button, a page number)
stays with each front end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.layers.index.model import LayerView
from layerpeek.core.models import EntryInfo, EntryPage, LayerProblem

if TYPE_CHECKING:
    from layerpeek.core.image.resolve import ResolvedImage
    from layerpeek.core.layers.progress import ProgressCallback
    from layerpeek.core.service import Layerpeek

T = TypeVar("T")
Views = Callable[[int, int | None, bool], Awaitable[LayerView]]
"""``view(layer, wanted, whole)``: at least ``wanted`` entries of a layer (None: all)."""
Match = Callable[[EntryInfo], bool]


def check_page(start: int, limit: int | None) -> None:
    if start < 0 or (limit is not None and limit < 1):
        raise LayerpeekError("a page needs start >= 0 and limit >= 1")


def window(items: Sequence[T], start: int, limit: int | None) -> tuple[list[T], int | None]:
    """``limit`` items from ``start`` (None: to the end), and where the next page starts
    (None at the end)."""
    end = len(items) if limit is None else min(len(items), start + limit)
    return list(items[start:end]), end if end < len(items) else None


def last_start(total: int, size: int) -> int:
    """Where the last page of ``size`` entries starts in a listing of ``total``."""
    return max(0, (total - 1) // size) * size


def problems_on_page(
    damage: list[tuple[int, LayerProblem]], start: int, end: int | None
) -> list[LayerProblem]:
    """The problems whose position in a listing falls on the page ``[start, end)``; ``end``
    None for the last page, which also holds a position at the listing's very end."""
    return [p for at, p in damage if start <= at and (end is None or at < end)]


async def entry_page(
    views: Views,
    image: ResolvedImage,
    layer: int | None,
    start: int,
    limit: int,
    *,
    last: bool = False,
) -> EntryPage:
    """Entries ``start`` to ``start + limit`` of one layer's listing, or every layer's
    bottom-up (``Layerpeek.list_page`` says what a page reads). ``last``: the listing's last
    page instead, whatever ``start``: each layer is read whole once, and that same reading
    both counts the listing and answers the page."""
    layers = [image.layer(layer)] if layer is not None else range(len(image.manifest.layers))
    known: dict[int, LayerView] = {}
    if last:
        for index in layers:
            known[index] = await views(index, None, True)
        start = last_start(sum(len(v.entries) for v in known.values()), limit)
    check_page(start, limit)
    found: list[EntryInfo] = []
    damage: list[tuple[int, LayerProblem]] = []  # (position in the listing, problem)
    offset = 0  # position of the current layer's first entry in the whole listing
    for index in layers:
        end = start + limit - offset  # where the page ends, counted in this layer
        view = known.get(index) or await views(index, end + 1, False)
        found.extend(EntryInfo.of(index, e) for e in view.entries[max(start - offset, 0) : end])
        coverage = {"layer": index, "scanned_bytes": view.scanned, "layer_bytes": view.size}
        if len(view.entries) > end:
            return EntryPage(
                entries=found,
                start=start,
                next_start=start + limit,
                complete=False,
                problems=problems_on_page(damage, start, start + limit),
                **coverage,
            )
        offset += len(view.entries)
        if view.problem is not None:
            digest = image.manifest.layers[index].digest
            problem = LayerProblem.of(str(image.reference), index, digest, view.problem)
            damage.append((offset, problem))
    return EntryPage(
        entries=found,
        start=start,
        next_start=None,
        complete=True,
        problems=problems_on_page(damage, start, None),
        **coverage,
    )


@dataclass(frozen=True)
class Position:
    """Where a filtered listing continues: layer ``layer``, after ``entry`` tar entries."""

    layer: int
    entry: int


@dataclass(frozen=True)
class FilteredPage:
    entries: list[EntryInfo]
    next: Position | None
    problems: list[LayerProblem]
    """Damaged layers whose entries this page read to the damage."""


class LayerProgress(Protocol):
    """How a front end follows a listing over several layers."""

    def layer(self, position: int, index: int) -> ProgressCallback | None:
        """The callback for the ``position``-th layer listed, layer ``index`` of the image."""

    async def flush(self) -> None:
        """Pass on what the callbacks gathered; called between entries."""


async def filtered_page(
    peek: Layerpeek,
    image: ResolvedImage,
    layers: list[int],
    start: Position,
    limit: int,
    match: Match,
    progress: LayerProgress,
) -> FilteredPage:
    """Up to ``limit`` entries of ``layers`` that ``match`` accepts, from ``start`` on.

    The position is kept per layer, so the next page starts reading at the layer it stopped
    in instead of at layer 0; a page ends one match early: the match that did not fit is
    where the next page starts, so a listing never ends with an empty page. A damaged layer
    ends at its damage: the page that reads up to it names the problem and goes on with the
    next layer, so no later page meets the same damage again."""
    found: list[EntryInfo] = []
    problems: list[LayerProblem] = []
    first = layers.index(start.layer)
    for position, index in enumerate(layers[first:], start=first):
        # The listing starts at the position (a slice of the layer): what it skips is not read.
        seen = start.entry if index == start.layer else 0
        report = progress.layer(position, index)
        listing = peek.entries(image, index, on_progress=report, problems=problems, start=seen)
        async with aclosing(listing) as entries:
            async for entry in entries:
                if match(entry):
                    if len(found) == limit:
                        return FilteredPage(found, Position(index, seen), problems)
                    found.append(entry)
                seen += 1
                await progress.flush()
        await progress.flush()
    return FilteredPage(found, None, problems)
