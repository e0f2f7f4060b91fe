"""Listings of an image's own layers: entries one at a time, in batches, or one page.

Each reads the layers' indexes (``LayerIndexes.view``) only as far as the answer needs. A
damaged layer's entries end at its damage; a caller that answers with what was read records
the damage as a ``LayerProblem`` (``met``), the others see it raised.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import anyio
import anyio.lowlevel

from layerpeek.core.errors import LayerError, LayerpeekError
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.layers.entry import IMAGE_LIMITS, Tally, TarEntry
from layerpeek.core.layers.index.model import LayerView
from layerpeek.core.layers.index.store import LayerIndexes
from layerpeek.core.layers.progress import ProgressCallback, reporter
from layerpeek.core.models import EntryInfo, EntryPage, LayerProblem
from layerpeek.core.paging import entry_page

YIELD_EVERY = 1000
"""Entries listed between two passes through the event loop (a few milliseconds of work)."""


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
) -> AsyncGenerator[EntryInfo, None]:
    """Entries of one layer, or of every layer bottom-up (``Layerpeek.entries``)."""
    listed = batches(
        indexes,
        image,
        layer,
        on_progress,
        whole=whole,
        tally=tally,
        problems=problems,
        start=start,
    )
    async with aclosing(listed):
        async for index, batch in listed:
            for entry in batch:
                yield EntryInfo.of(index, entry)


async def batches(
    indexes: LayerIndexes,
    image: ResolvedImage,
    layer: int | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    whole: bool = False,
    tally: Tally | None = None,
    problems: list[LayerProblem] | None = None,
    start: int = 0,
) -> AsyncGenerator[tuple[int, list[TarEntry]], None]:
    """``entries`` as the layers' own tar entries, up to ``YIELD_EVERY`` at a time, each
    batch with its layer's index (``Layerpeek.entry_batches``).

    For a caller that handles thousands of entries and needs no model of each: a full
    listing's entries cost more to make into models, and to pass one by one through an
    async generator, than to scan.
    """
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
            known = len(view.entries)
            for at in range(seen, known, YIELD_EVERY):
                if at > seen:
                    # A cached layer arrives whole: let other tasks run while it is listed.
                    await anyio.lowlevel.checkpoint()
                batch = view.entries[at : min(at + YIELD_EVERY, known)]
                fitted = tally.fit(batch)
                if fitted:
                    yield index, batch[:fitted] if fitted < len(batch) else batch
                if fitted < len(batch):
                    tally.add(batch[fitted])  # past the limits: raises
            seen = max(seen, known)
            if view.problem is not None:
                met(image, index, view.problem, problems)
                break
            if view.complete:
                break


async def page(
    indexes: LayerIndexes,
    image: ResolvedImage,
    layer: int | None = None,
    start: int = 0,
    limit: int = 100,
    on_progress: ProgressCallback | None = None,
    *,
    last: bool = False,
) -> EntryPage:
    """Entries ``start`` to ``start + limit`` of a listing, or its last page (``last``):
    ``Layerpeek.list_page``, paged by ``paging.entry_page`` over the layers' index views."""

    async def views(index: int, wanted: int | None, whole: bool) -> LayerView:
        descriptor = image.manifest.layers[index]
        report = reporter(descriptor, on_progress)
        return await indexes.view(image.reference, descriptor, wanted, report, whole=whole)

    return await entry_page(views, image, layer, start, limit, last=last)
