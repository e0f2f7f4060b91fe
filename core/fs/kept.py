"""The merged views of resolved images, built once and kept, so their pages are slices.

A merge runs the overlay rules over every entry of every layer, which takes a noticeable
time for a layer of tens of thousands of entries. Rebuilt for every call and every page, ten
users paging one image at once held ten trees and paging through hundreds of pages took
minutes.
Here concurrent asks for one image share one build (``Flights``: a caller that goes away
only stops waiting), and the finished view is kept, by the image's manifest digest within
its registry (``cache.interface.key_for``, as its layers are), until newer views push it out.

A view is immutable once built and only read afterwards, from the event loop or worker
threads. A view built from a damaged layer keeps that layer's damage (``damage``): every
answer from it says what it lacks, as the answer that built it did.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from layerpeek.core.errors import LayerError
from layerpeek.core.flight import Flights
from layerpeek.core.fs.overlay import Node, Overlay

KEPT_VIEWS = 4
"""Merged views kept in memory at most (the images being paged through now)."""
KEPT_NODES = 1_000_000
"""Paths of the kept views, together: the most recent view is kept whatever its size, older
ones only while the total stays under this. A view holds ~470 bytes a path of ~40 characters
(the tree, its nodes and the sorted list of them: 91.6 MiB for 204,202 paths, measured with
tracemalloc), so ~0.45 GB at the bound, beside the layer indexes it was built from."""


@dataclass(frozen=True)
class MergedView:
    """One image's merged filesystem: the tree, its paths in order, and the damage met."""

    overlay: Overlay
    nodes: list[Node]
    """Every path of the merged filesystem sorted by path: a page is a slice of it."""
    damage: tuple[tuple[int, LayerError], ...]
    """(layer, error) for each damaged layer whose entries before the damage were used."""


class MergedViews:
    """The views being built (one build per image, however many ask) and those kept."""

    def __init__(self) -> None:
        self._builds: Flights[str, MergedView] = Flights()
        self._kept: OrderedDict[str, MergedView] = OrderedDict()

    def __len__(self) -> int:
        """Views kept now."""
        return len(self._kept)

    async def get(self, key: str, build: Callable[[], Awaitable[MergedView]]) -> MergedView:
        """The view kept under ``key``, else ``build()``'s, shared with every concurrent ask
        and kept (an error is shared too, and not kept: the next ask builds again)."""
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            return kept
        return await self._builds.run(key, lambda: self._built(key, build))

    async def _built(self, key: str, build: Callable[[], Awaitable[MergedView]]) -> MergedView:
        view = await build()
        self._keep(key, view)
        return view

    def _keep(self, key: str, view: MergedView) -> None:
        """Keep ``view`` as the most recent; drop the oldest past either bound."""
        self._kept.pop(key, None)
        self._kept[key] = view
        held = sum(len(kept.nodes) for kept in self._kept.values())
        while len(self._kept) > KEPT_VIEWS or (len(self._kept) > 1 and held > KEPT_NODES):
            held -= len(self._kept.popitem(last=False)[1].nodes)
