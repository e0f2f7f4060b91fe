"""Reading one regular file of a TOC layer: only its chunks are fetched, each verified."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Sequence

import anyio.to_thread

from layerpeek.core.errors import CorruptLayer, FileNotInLayer, LayerError
from layerpeek.core.layers.compression import Compression, make_decompressor
from layerpeek.core.layers.entry import display_path
from layerpeek.core.layers.toc.checks import Hash, fetch_span
from layerpeek.core.layers.toc.model import Fetch, Toc, TocChunk, TocFormat

WINDOW = 8 << 20
"""Largest single range request ``read_toc_file`` makes; adjacent chunks share requests."""
_STEP = 4 << 20  # decompressed bytes one worker-thread hop produces at most
_COMPRESSION: dict[TocFormat, Compression] = {"estargz": "gzip", "zstd:chunked": "zstd"}


async def read_toc_file(fetch: Fetch, toc: Toc, path: str) -> AsyncGenerator[bytes, None]:
    """Stream a regular file's bytes, fetching only its chunks.

    Chunks whose compressed spans touch share range requests of up to ``WINDOW`` bytes. Each
    chunk is checked against its TOC digest before it is yielded, and the whole file against
    the file's digest at the end: ``DigestMismatch`` if either differs.
    """
    file = toc.files.get(display_path(path))
    if file is None:
        raise FileNotInLayer(f"{path} is not a regular file in this layer's TOC")
    kind = _COMPRESSION[toc.format]
    whole = Hash(file.digest, f"{file.entry.path} does not match its TOC digest")
    for run in _runs(file.chunks):
        windows = _Windows(fetch, run[-1].end)
        for chunk in run:
            async for piece in _chunk_bytes(windows, chunk, kind, file.entry.path):
                whole.update(piece)
                yield piece
    whole.verify()


def _runs(chunks: Sequence[TocChunk]) -> Iterator[list[TocChunk]]:
    """Group chunks whose compressed spans touch or overlap, to fetch them together."""
    run: list[TocChunk] = []
    run_end = 0
    for chunk in chunks:
        if run and not run[-1].offset <= chunk.offset <= run_end:
            yield run
            run = []
        run.append(chunk)
        run_end = max(run_end, chunk.end) if len(run) > 1 else chunk.end
    if run:
        yield run


class _Windows:
    """Serves slices of one run of chunks, fetching it forward in ``WINDOW``-sized requests."""

    def __init__(self, fetch: Fetch, end: int) -> None:
        self._fetch = fetch
        self._end = end
        self._at = 0
        self._data = b""

    async def read(self, start: int, stop: int) -> bytes:
        """The next bytes from ``start`` (before ``stop``) that one window holds."""
        if not self._at <= start < self._at + len(self._data):
            self._data = await fetch_span(self._fetch, start, min(start + WINDOW, self._end))
            self._at = start
        return self._data[start - self._at : stop - self._at]


async def _chunk_bytes(
    windows: _Windows, chunk: TocChunk, kind: Compression, path: str
) -> AsyncGenerator[bytes, None]:
    """Decompress one chunk's span, skip ``inner_offset``, yield its ``size`` bytes verified."""
    decompressor = make_decompressor(kind)
    check = Hash(
        chunk.digest,
        f"{path}: the chunk at file offset {chunk.chunk_offset:,} does not match its TOC digest",
    )
    skip, left = chunk.inner_offset, chunk.size
    position = chunk.offset
    while left and position < chunk.end:
        compressed = await windows.read(position, chunk.end)
        position += len(compressed)
        pieces = decompressor.feed(compressed)
        while left:
            batch = await anyio.to_thread.run_sync(_pull, pieces, skip + left)
            if not batch:
                break
            for piece in batch:
                cut = min(skip, len(piece))
                skip -= cut
                data = piece[cut : cut + left]
                if data:
                    left -= len(data)
                    check.update(data)
                    yield data
    if left:
        raise CorruptLayer(
            f"{path}: the chunk at blob offset {chunk.offset:,} holds "
            f"{chunk.size - left:,} of the {chunk.size:,} bytes its TOC promises",
            chunk.offset,
        )
    check.verify()


def _pull(pieces: Iterator[bytes], want: int) -> list[bytes]:
    """Decompress (in a worker thread) until ``want`` bytes or ``_STEP`` bytes are out."""
    batch: list[bytes] = []
    total = 0
    try:
        for piece in pieces:
            batch.append(piece)
            total += len(piece)
            if total >= min(want, _STEP):
                break
    except LayerError as error:
        raise CorruptLayer(f"a TOC chunk does not decompress ({error})") from error
    return batch
