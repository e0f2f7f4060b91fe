"""What is known of a layer: its complete index (``LayerIndex``, what the cache keeps and a
ranged read starts from) or the view a listing gets while it is being scanned (``LayerView``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from layerpeek.core.errors import (
    LayerError,
)
from layerpeek.core.layers.checkpoints import (
    Checkpoint,
)
from layerpeek.core.layers.compression import (
    Compression,
)
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.layers.index.encoding import IndexEncoder, decode

OnScan = Callable[[int, int], object]
"""Called as ``on_scan(blob_bytes_received, entries_found)``."""


@dataclass
class LayerIndex:
    """Everything a listing needs about one layer blob; immutable once complete."""

    digest: str
    compression: Compression
    entries: list[TarEntry]
    checkpoints: list[Checkpoint] = field(default_factory=list)
    frames: list[tuple[int, int]] = field(default_factory=list)
    """zstd frame starts (compressed, uncompressed), about ``SPACING`` apart; empty for a
    single-frame layer."""

    def to_bytes(self) -> bytes:
        """The index encoded for the cache (``encoding``)."""
        return IndexEncoder().finish(self)

    @classmethod
    def from_bytes(cls, data: bytes, digest: str) -> LayerIndex | None:
        """Decode a cached index; None for anything unexpected (then the layer is rescanned)."""
        decoded = decode(data, digest)
        return None if decoded is None else cls(digest, *decoded)


@dataclass(frozen=True)
class LayerView:
    """What is known of a layer right now: ``entries`` is complete when ``complete`` is set,
    else the first entries of the layer, found in its first ``scanned`` compressed bytes.
    ``problem`` is the damage the scan stopped at: ``entries`` are all those before it, and
    no more will follow."""

    entries: list[TarEntry]
    complete: bool
    scanned: int
    size: int
    index: LayerIndex | None = None
    problem: LayerError | None = None
