"""A layer index as bytes for the cache, encoded while the scan that builds it runs.

The encoding: the length of the listing, the listing (zlib-compressed JSON lines: the
entries ``ROWS_PER_LINE`` at a time, then a header), then the gzip checkpoints
(``checkpoints.encode``). One ``json`` call holds the GIL for its whole document, which for
50k entries would stall the event loop beside the worker thread; lines keep each call short.
Names may hold surrogate escapes (undecodable bytes); JSON's ``\\udcXX`` escapes keep them
exact.

Encoding a large layer's index at once would make a full listing wait for it as the scan
ends. An ``IndexEncoder`` kept by the scan encodes and compresses
each full line of entries and each checkpoint's window as soon as they are found
(``catch_up``, beside the scan, while the inflater is the busy one), so ``finish`` has only
the last line and the header left. The header comes last because it holds what
only the end of the scan knows (zstd frames); lines compressed as they come keep the
encoder's memory at ~27 bytes an entry, where the JSON lines kept for one compression at
the end held ~260 (and ~410 at the end): 0.5 GB for a layer at ``entry.LAYER_LIMITS``.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson
from zlib_ng import zlib_ng

from layerpeek.core.layers import checkpoints
from layerpeek.core.layers.checkpoints import Checkpoint
from layerpeek.core.layers.compression import Compression
from layerpeek.core.layers.entry import TarEntry

if TYPE_CHECKING:
    from layerpeek.core.layers.index.model import LayerIndex

Decoded = tuple[Compression, list[TarEntry], list[Checkpoint], list[tuple[int, int]]]
"""A ``LayerIndex``'s fields after its digest, as ``decode`` reads them back."""

FORMAT_VERSION = 6
"""6: an entry's row ends with ``cut`` (indexes written before it hold uncut names), and the
header is the last line."""
ROWS_PER_LINE = 1000


class IndexEncoder:
    """The encoding of one growing index: the compressed lines of entries and the packed
    checkpoint windows done so far. Entries and checkpoints are only ever appended to, so
    what was encoded stays true."""

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        # Level 1: several times faster than the default level for a somewhat larger
        # encoding, and most of it runs beside the scan.
        self._listing = zlib_ng.compressobj(1)
        self._compressed: list[bytes] = []
        self._rows = 0  # entries encoded so far
        self._windows: list[bytes] = []

    def catch_up(self, entries: Sequence[TarEntry], points: Sequence[Checkpoint]) -> None:
        """Encode every full line of entries and every checkpoint not encoded yet."""
        while len(entries) - self._rows >= ROWS_PER_LINE:
            self._line(entries[self._rows : self._rows + ROWS_PER_LINE])
        self._windows.extend(checkpoints.pack(p) for p in points[len(self._windows) :])

    def _line(self, rows: Sequence[TarEntry]) -> None:
        self._compressed.append(self._listing.compress(_json_line(rows) + b"\n"))
        self._rows += len(rows)

    def finish(self, index: LayerIndex) -> bytes:
        """The whole encoding of ``index``, whose entries and checkpoints are the ones caught
        up with so far and more. It lets go of what it had encoded, so a second call encodes
        everything again."""
        self.catch_up(index.entries, index.checkpoints)
        if len(index.entries) > self._rows:
            self._line(index.entries[self._rows :])
        header = {
            "version": FORMAT_VERSION,
            "digest": index.digest,
            "compression": index.compression,
            "frames": index.frames,
        }
        self._compressed += [self._listing.compress(orjson.dumps(header)), self._listing.flush()]
        listing = b"".join(self._compressed)
        packed = checkpoints.encode(index.checkpoints, self._windows)
        self._start()  # what was encoded is in ``listing`` and ``packed`` now
        return b"".join((struct.pack("<I", len(listing)), listing, packed))


def decode(data: bytes, digest: str) -> Decoded | None:
    """``(compression, entries, checkpoints, frames)`` from ``IndexEncoder.finish``'s bytes;
    None for anything unexpected: another format version or digest, or damage."""
    try:
        (length,) = struct.unpack_from("<I", data)
        *lines, last = zlib.decompress(data[4 : 4 + length]).split(b"\n")
        header = json.loads(last)
        if header["version"] != FORMAT_VERSION or header["digest"] != digest:
            return None
        entries = [TarEntry(*row) for line in lines for row in json.loads(line)]
        frames = [(int(c), int(u)) for c, u in header["frames"]]
        points = checkpoints.decode(data[4 + length :])
    except (ValueError, KeyError, TypeError, zlib.error, struct.error):
        return None
    compression: Compression = header["compression"]  # as ``IndexEncoder.finish`` wrote it
    return compression, entries, points, frames


def _json_line(entries: Sequence[TarEntry]) -> bytes:
    """One line of rows; orjson (much faster) unless a name holds a surrogate escape, which
    only ``json`` writes (as ``\\udcXX``, read back exactly)."""
    rows = [
        [e.path, e.type, e.size, e.mode, e.uid, e.gid, e.mtime, e.link, e.offset, e.sparse, e.cut]
        for e in entries
    ]
    try:
        return orjson.dumps(rows)
    except orjson.JSONEncodeError:
        return json.dumps(rows, separators=(",", ":")).encode()
