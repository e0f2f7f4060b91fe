"""An image's merged filesystem: every layer's listing through the overlay rules, bottom-up.

Built once however many ask at once and kept (``kept.MergedViews``), by manifest digest
within the image's registry. The rules run in a worker thread: their work grows with the
listing, which the image's author chose.
"""

from __future__ import annotations

from functools import partial

import anyio
import anyio.to_thread

from layerpeek.core.cache.interface import key_for
from layerpeek.core.errors import LayerError
from layerpeek.core.fs.kept import MergedView, MergedViews
from layerpeek.core.fs.overlay import Overlay
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.layers.entry import IMAGE_LIMITS, Tally, TarEntry
from layerpeek.core.layers.index.store import LayerIndexes
from layerpeek.core.layers.listing import met
from layerpeek.core.layers.progress import ProgressCallback, reporter
from layerpeek.core.models import LayerProblem


class Merges:
    """The merged views of the images one service reads, from its layer indexes."""

    def __init__(self, indexes: LayerIndexes) -> None:
        self.indexes = indexes
        self._views = MergedViews()
        # Told how far the layer reads behind a merged view (and find) have come: a front
        # end with one user at a time (the CLI) shows it; shared front ends leave it None.
        self.on_progress: ProgressCallback | None = None

    async def view(
        self, image: ResolvedImage, problems: list[LayerProblem] | None = None
    ) -> MergedView:
        """The image's merged filesystem, built or kept.

        With ``problems``, each damaged layer the view was built from is recorded there (the
        view holds the entries read before its damage); without, the first is raised."""
        key = key_for(image.reference, image.manifest.digest)
        view = await self._views.get(key, partial(self._merge, image))
        for index, error in view.damage:
            met(image, index, error, problems)
        return view

    async def overlay(
        self, image: ResolvedImage, problems: list[LayerProblem] | None = None
    ) -> Overlay:
        """The merged tree of ``image`` (``view``): provenance, removed files, lookups."""
        return (await self.view(image, problems)).overlay

    async def _merge(self, image: ResolvedImage) -> MergedView:
        """One layer's listing in memory at a time besides the merged tree."""
        overlay, tally = Overlay(), Tally(IMAGE_LIMITS)
        damage: list[tuple[int, LayerError]] = []
        for index, descriptor in enumerate(image.manifest.layers):
            # The layer's own entries, not a model per entry: a million-entry layer would
            # hold ~0.5 GB of them beside the tree for nothing.
            report = reporter(descriptor, self.on_progress)
            view = await self.indexes.view(image.reference, descriptor, None, report, whole=True)
            await anyio.to_thread.run_sync(_apply, overlay, tally, index, view.entries)
            if view.problem is not None:
                damage.append((index, view.problem))
        nodes = await anyio.to_thread.run_sync(overlay.listing)
        return MergedView(overlay, nodes, tuple(damage))


def _apply(overlay: Overlay, tally: Tally, index: int, entries: list[TarEntry]) -> None:
    """In a worker thread: count a layer's entries against the image's limits, then apply
    them (both take time in proportion to a listing its author chose)."""
    for entry in entries:
        tally.add(entry)
    overlay.apply(index, entries)
