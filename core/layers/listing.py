"""Listings of an image's own layers: entries one at a time, a count, or one page.

Each reads the layers' indexes (``LayerIndexes.view``) only as far as the answer needs. A
damaged layer's entries end at its damage; a caller that answers with what was read records
the damage as a ``LayerProblem`` (``met``), the others see it raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel

from layerpeek.core.errors import LayerError, LayerpeekError
from layerpeek.core.fs.reports import check_page
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.layers.entry import IMAGE_LIMITS, Tally
from layerpeek.core.layers.index import LayerIndexes
from layerpeek.core.layers.progress import ProgressCallback, reporter
from layerpeek.core.models import EntryInfo, EntryPage, LayerProblem

YIELD_EVERY = 1000
"""Entries listed between two passes through the event loop (~5 ms of work)."""


def problem(image: ResolvedImage, index: int, error: LayerError) -> LayerProblem:
    """Layer ``index``'s damage as an answer states it."""
    digest = image.manifest.layers[index].digest
    return LayerProblem.of(str(image.reference), index, digest, error)


def met(
    image: ResolvedImage, index: int, error: LayerError, problems: list[LayerProblem] | None
) -> None:
    """A layer's damage, met after its entries before it were delivered: recorded in
    ``problems`` for a caller that answers with what was read, else raised."""
    if problems is None:
        raise error
    problems.append(problem(image, index, error))


async def entries(
    indexes: LayerIndexes,
    image: ResolvedImage,
    layer: int | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    whole: bool = False,
    tally: Tally | None = None,
    problems: list[LayerProblem] | None = None,
    start: int = 0,
) -> AsyncIterator[EntryInfo]:
    """Entries of one layer, or of every layer bottom-up (``Layerpeek.entries``)."""
    if start and layer is None:
        raise LayerpeekError("a listing starts past entry 0 only within one layer")
    layers = image.layers(layer)
    tally = Tally(IMAGE_LIMITS) if tally is None else tally
    for index in layers:
        descriptor = image.manifest.layers[index]
        report = reporter(descriptor, on_progress)
        seen = start
        while True:
            view = await indexes.view(image.reference, descriptor, seen + 1, report, whole=whole)
            fresh = view.entries[seen:]
            seen += len(fresh)
            for position, entry in enumerate(fresh, 1):
                tally.add(entry)
                yield EntryInfo.of(index, entry)
                if position % YIELD_EVERY == 0:
                    # A cached layer arrives whole: let other tasks run while it is listed.
                    await anyio.lowlevel.checkpoint()
            if view.problem is not None:
                met(image, index, view.problem, problems)
                break
            if view.complete:
                break


async def count(indexes: LayerIndexes, image: ResolvedImage, layer: int | None = None) -> int:
    """Entries of one layer, or of every layer: a damaged layer's up to its damage (the
    page that reaches it names it). Read from the layers' indexes, no model made."""
    total = 0
    for index in image.layers(layer):
        descriptor = image.manifest.layers[index]
        view = await indexes.view(image.reference, descriptor, None, whole=True)
        total += len(view.entries)
    return total


async def page(
    indexes: LayerIndexes,
    image: ResolvedImage,
    layer: int | None = None,
    start: int = 0,
    limit: int = 100,
    on_progress: ProgressCallback | None = None,
) -> EntryPage:
    """Entries ``start`` to ``start + limit`` of a listing (``Layerpeek.list_page``)."""
    check_page(start, limit)
    found: list[EntryInfo] = []
    damage: list[tuple[int, LayerProblem]] = []  # (position in the listing, problem)
    offset = 0  # position of the current layer's first entry in the whole listing
    for index in image.layers(layer):
        descriptor = image.manifest.layers[index]
        end = start + limit - offset  # where the page ends, counted in this layer
        report = reporter(descriptor, on_progress)
        view = await indexes.view(image.reference, descriptor, end + 1, report)
        found.extend(EntryInfo.of(index, e) for e in view.entries[max(start - offset, 0) : end])
        coverage = {"layer": index, "scanned_bytes": view.scanned, "layer_bytes": view.size}
        if len(view.entries) > end:
            return EntryPage(
                entries=found,
                next_start=start + limit,
                complete=False,
                problems=_on_page(damage, start, start + limit),
                **coverage,
            )
        offset += len(view.entries)
        if view.problem is not None:
            damage.append((offset, problem(image, index, view.problem)))
    return EntryPage(
        entries=found,
        next_start=None,
        complete=True,
        problems=_on_page(damage, start, None),
        **coverage,
    )


def _on_page(
    damage: list[tuple[int, LayerProblem]], start: int, end: int | None
) -> list[LayerProblem]:
    """The problems whose position in a listing falls on the page ``[start, end)``; ``end``
    None for the last page, which also holds a position at the listing's very end."""
    return [p for at, p in damage if start <= at and (end is None or at < end)]
