"""One file of an indexed layer read with one range request: from the nearest gzip
checkpoint or zstd frame start before it, or straight from a plain tar."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import anyio
import anyio.to_thread

from layerpeek.core.errors import (
    TruncatedLayer,
)
from layerpeek.core.layers.checkpoints import (
    Resume,
    end_for,
    nearest,
)
from layerpeek.core.layers.compression import (
    ZstdDecompressor,
)
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.layers.index.model import LayerIndex
from layerpeek.core.layers.reader import MAX_WINDOW, BlobReader
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.reference import Reference


def ranged(index: LayerIndex, entry: TarEntry) -> bool:
    """True when ``read_ranged`` can fetch ``entry`` with one range: an uncompressed layer,
    a gzip layer with a checkpoint before the entry's data, or a zstd layer with a frame
    start after the first one before it. A sparse file never is: its map may be in headers
    before ``offset``, so it is read by streaming the layer."""
    if entry.sparse:
        return False
    if index.compression == "none":
        return True
    if index.compression == "zstd":
        return any(0 < u <= entry.offset for _, u in index.frames)
    return index.compression == "gzip" and nearest(index.checkpoints, entry.offset) is not None


def _frame_for(frames: list[tuple[int, int]], start: int, stop: int) -> tuple[int, int, int | None]:
    """The frame start at or before ``start`` (compressed, uncompressed) and a blob offset
    past the data up to ``stop``: the next kept frame start at or after it, else None."""
    begin = max((f for f in frames if f[1] <= start), key=lambda f: f[1])
    end = next((c for c, u in frames if u >= stop), None)
    return begin[0], begin[1], end


async def read_ranged(
    client: RegistryClient, ref: Reference, index: LayerIndex, entry: TarEntry
) -> AsyncGenerator[bytes, None]:
    """The data of a regular file ``entry`` of an indexed layer, with one Range request: the
    bytes themselves when the layer is a plain tar, else the compressed data from the nearest
    gzip checkpoint (or zstd frame start) to the first one past the file, decompressed in a
    worker thread."""
    if index.compression == "none":
        stop, window = entry.offset + entry.size, max(entry.size, 1)
        plain = BlobReader(client, ref, index.digest, start=entry.offset, end=stop, window=window)
        async with aclosing(plain.chunks()) as chunks:
            async for chunk in chunks:
                yield chunk
        return
    if index.compression == "zstd":
        fetch_from, out_from, end = _frame_for(
            index.frames, entry.offset, entry.offset + entry.size
        )
        decoder: Resume | ZstdDecompressor = ZstdDecompressor()  # frames start afresh
    else:
        point = nearest(index.checkpoints, entry.offset)
        assert point is not None, "read_ranged needs ranged() to be true"
        fetch_from, out_from = point.fetch_from, point.uncompressed
        end = end_for(index.checkpoints, entry.offset + entry.size)
        decoder = Resume(point)
    blob = BlobReader(client, ref, index.digest, start=fetch_from, end=end, window=MAX_WINDOW)
    skip, left = entry.offset - out_from, entry.size
    try:
        async with aclosing(blob.chunks()) as chunks:
            async for chunk in chunks:
                pieces = decoder.feed(chunk)
                while left and (piece := await anyio.to_thread.run_sync(next, pieces, b"")):
                    cut = min(skip, len(piece))
                    piece, skip = piece[cut : cut + left], skip - cut
                    if piece:
                        left -= len(piece)
                        yield piece
                if not left:
                    return
    finally:
        if isinstance(decoder, Resume):
            decoder.close()
    raise TruncatedLayer(f"the layer ends inside the data of {entry.path!r}", blob.position)
