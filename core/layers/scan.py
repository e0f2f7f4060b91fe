"""A layer blob's chunks in, tar entries out: decompression and scanning off the event loop.

``LayerReader`` is the synchronous pipeline (detect compression, decompress, scan tar) and
``scan_layer`` the async generator front ends consume. The reader does at most
``STEP_OUTPUT`` bytes of decompressed work per step, ``scan_layer`` runs each step in a
worker thread, and it pulls the next network chunk only once the consumer has taken every
event so far: a consumer that stops early (``--limit``, a found file) stops the download.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterator
from dataclasses import dataclass

import anyio.to_thread

from layerpeek.core.errors import LayerError
from layerpeek.core.layers.compression import (
    MAGIC_LENGTH,
    Compression,
    Decompressor,
    Piece,
    detect_compression,
    make_decompressor,
)
from layerpeek.core.layers.tar.scanner import FileData, ScanEvent, TarScanner, Want

__all__ = [
    "BATCH",
    "FIRST_BATCH",
    "STEP_OUTPUT",
    "FileData",
    "Inflated",
    "LayerReader",
    "ScanEvent",
    "scan_layer",
]

# Network chunks are joined into batches for the worker thread: the first small, so the first
# entries (and a ``--limit`` stop) come soon, then doubling up to BATCH, so what a
# worker-thread hop costs stays small next to the work it carries.
FIRST_BATCH = 64 << 10
BATCH = 1 << 20
STEP_OUTPUT = 2 << 20
"""Decompressed bytes one step handles, which bounds the events (and data) it returns."""

OnProgress = Callable[[int, int], object]
"""Called as ``on_progress(compressed_bytes_consumed, entries_found)``."""


@dataclass(frozen=True, slots=True)
class Inflated:
    """One step's decompressed pieces, the compressed bytes consumed after them, and the
    decompressor's error if it stopped there."""

    pieces: list[Piece]
    consumed: int
    error: LayerError | None


class LayerReader:
    """Synchronous pipeline for one blob: compressed bytes in, bounded batches of events out.

    ``feed`` queues bytes; ``step`` works through them, at most ``step_output`` decompressed
    bytes at a time, until ``needs_input``; ``close`` once the blob ends. One step per worker
    thread hop, and ``needs_input`` known without an extra hop, because every hop costs.
    Errors are raised with how far the scan got (``offset`` in compressed bytes, ``entries``
    read) by the step after the one that returned the events found before the failure, so a
    listing of a damaged layer shows everything up to the damage.
    """

    def __init__(
        self,
        want: Want | None = None,
        make: Callable[[Compression], Decompressor] = make_decompressor,
        step_output: int = STEP_OUTPUT,
    ) -> None:
        """``make`` picks the decompressor once the compression is known (a layer index
        passes one that records gzip checkpoints while it inflates); ``step_output`` bounds
        the decompressed bytes of one step (a full scan takes larger steps, see
        ``index.builder.SCAN_STEP``)."""
        self._make = make
        self._step_output = step_output
        self._scanner = TarScanner(want)
        self._decompressor: Decompressor | None = None
        self._head = b""
        self._pieces: Iterator[Piece] | None = None
        self._failure: LayerError | None = None

    @property
    def consumed(self) -> int:
        """Compressed bytes taken in so far."""
        return self._decompressor.consumed if self._decompressor else 0

    @property
    def entries(self) -> int:
        """Tar entries found so far."""
        return self._scanner.entries

    @property
    def needs_input(self) -> bool:
        """True once every queued byte is used up (and no error waits to be raised)."""
        return self._pieces is None and self._failure is None

    def feed(self, data: bytes) -> None:
        """Queue the next bytes of the blob; call only when ``needs_input``."""
        if self._decompressor is None:
            self._head += data
            if len(self._head) < MAGIC_LENGTH:
                return
            data, self._head = self._head, b""
            self._decompressor = self._make(detect_compression(data))
        self._pieces = self._decompressor.feed(data)

    def step(self) -> list[ScanEvent]:
        """Work through queued bytes until ``step_output`` is reached or they run out."""
        return self.scan(self.inflate())

    def inflate(self) -> Inflated:
        """The first half of ``step``: decompress up to ``step_output`` of the queued bytes.

        It touches only the decompressor and ``scan`` only the scanner, so one worker thread
        can inflate the next step while another scans this one: inflating releases the
        interpreter lock, scanning holds it, and the two overlap.
        """
        if self._failure is not None:
            raise self._failure
        pieces: list[Piece] = []
        produced = 0
        try:
            for piece in self._pieces or ():
                pieces.append(piece)
                produced += len(piece)
                if produced >= self._step_output:
                    return Inflated(pieces, self.consumed, None)
        except LayerError as error:
            self._pieces = None
            return Inflated(pieces, self.consumed, error)
        self._pieces = None
        return Inflated(pieces, self.consumed, None)

    def scan(self, inflated: Inflated) -> list[ScanEvent]:
        """The second half of ``step``: the events in ``inflated``'s pieces. A failure (of
        the decompressor, carried in ``inflated``, or of the tar stream) is raised by the
        next ``inflate`` or ``scan``, after the events before it were returned."""
        if self._failure is not None:
            raise self._failure
        events: list[ScanEvent] = []
        try:
            for piece in inflated.pieces:
                self._scanner.feed(piece, events)
            if inflated.error is not None:
                raise inflated.error
        except LayerError as error:
            self._failure = self._explain(error, inflated.consumed)
        return events

    @property
    def failure(self) -> LayerError | None:
        """The error a scan ran into, once its events before it were returned."""
        return self._failure

    def close(self) -> None:
        """End of blob: check that both the compressed and the tar stream ended well.

        The compressed stream is checked first: a cut gzip member is the cause, the cut tar
        stream inside it only the symptom.
        """
        if self._failure is not None:
            raise self._failure
        try:
            if self._head:
                # Shorter than any magic number, so too short for a tar header: no events.
                self._decompressor = self._make(detect_compression(self._head))
                for piece in self._decompressor.feed(self._head):
                    self._scanner.feed(piece)
            if self._decompressor is not None:
                self._decompressor.finish()
            self._scanner.close()
        except LayerError as error:
            raise self._explain(error) from error

    def _explain(self, error: LayerError, consumed: int | None = None) -> LayerError:
        """The same error, its one-line message saying how far the scan got."""
        consumed = self.consumed if consumed is None else consumed
        entries = self._scanner.entries
        noun = "entry" if entries == 1 else "entries"
        message = f"{error} after {consumed:,} bytes ({entries:,} {noun} read)"
        explained = type(error)(message, consumed, entries)
        explained.__cause__ = error
        return explained


class _Batcher:
    """Joins network chunks into batches of growing size (see ``BATCH``)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._target = FIRST_BATCH

    def add(self, chunk: bytes) -> bytes | None:
        """Keep ``chunk``; return a full batch once enough bytes are held."""
        self._chunks.append(chunk)
        self._size += len(chunk)
        return self.take() if self._size >= self._target else None

    def take(self) -> bytes:
        """Everything held, as one batch."""
        batch = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks, self._size = [], 0
        self._target = min(self._target * 2, BATCH)
        return batch


async def scan_layer(
    chunks: AsyncIterable[bytes],
    *,
    want: Want | None = None,
    on_progress: OnProgress | None = None,
) -> AsyncGenerator[ScanEvent, None]:
    """Yield the entries of a layer blob (and ``FileData`` of wanted files) as they arrive.

    The compression is detected from the blob's first bytes. ``on_progress(compressed_bytes,
    entries)`` is called after each batch. Stop early with ``aclose()`` (or ``async with
    contextlib.aclosing(...)``): no further chunk is pulled from ``chunks``, which the caller
    still owns and closes. Raises ``TruncatedLayer``, ``CorruptLayer`` or ``HostileLayer``
    with ``offset`` and ``entries`` set; events before the failure are yielded first.
    """
    reader = LayerReader(want)
    batcher = _Batcher()
    source = aiter(chunks)
    while True:
        chunk = await anext(source, None)
        batch = batcher.take() if chunk is None else batcher.add(chunk)
        if batch is not None:
            reader.feed(batch)
            while not reader.needs_input:
                for event in await anyio.to_thread.run_sync(reader.step):
                    yield event
            if on_progress is not None:
                on_progress(reader.consumed, reader.entries)
        if chunk is None:
            break
    reader.close()
