"""One layer scanned progressively (``LayerScan``): page by page, its index built and
encoded for the cache as the scan goes."""

from __future__ import annotations

from functools import partial

import anyio
import anyio.to_thread

from layerpeek.core.errors import (
    LayerpeekError,
)
from layerpeek.core.layers.buffers import OutputPool
from layerpeek.core.layers.checkpoints import (
    OUTPUT,
    SPACING,
    Checkpoint,
    CheckpointInflater,
)
from layerpeek.core.layers.compression import (
    Compression,
    Decompressor,
    ZstdDecompressor,
    make_decompressor,
)
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.layers.index.encoding import IndexEncoder
from layerpeek.core.layers.index.model import LayerIndex, LayerView, OnScan
from layerpeek.core.layers.pump import InflatePump
from layerpeek.core.layers.reader import BlobReader
from layerpeek.core.layers.scan import FIRST_BATCH, Inflated, LayerReader, ScanEvent

SCAN_BATCH = 1 << 20
SCAN_STEP = 8 << 20
"""A scan's largest network batch and decompressed step. Each step is handed between
threads (network, inflater, scanner, event loop), and each hand-over waits for the
interpreter lock, so steps are large; a step's pieces are held until scanned, so a full
scan holds the pump's input and steps (``pump.INPUT``, ``pump.AHEAD``) and the step being
scanned, in the inflater's buffers (``buffers.OutputPool``): ~15-20 MB."""
PREFETCH_AFTER = 4 << 20
"""Blob bytes after which the scan inflates ahead on the pump (``pump.InflatePump``) and
reads the network ahead of the scan: not before, so a first page reads no further than it
must. A caller that reads the whole layer says so (``whole``), and the pump starts at once:
stepping through the first 4 MiB cost a full listing more than inflating them ahead."""


class LayerScan:
    """One layer read progressively: ``advance(n)`` reads until n entries are known."""

    def __init__(self, blob: BlobReader, size: int, hidden: frozenset[str] = frozenset()) -> None:
        self.blob = blob
        self.size = size
        self._hidden = hidden  # paths that are the layer format's, not the image's
        self.entries: list[TarEntry] = []
        self.complete = False
        self.compression: Compression = "none"
        self._inflater: CheckpointInflater | None = None
        self._zstd: ZstdDecompressor | None = None
        self._reader = LayerReader(make=self._decompressor, step_output=SCAN_STEP)
        self._batch = FIRST_BATCH
        self._pump: InflatePump | None = None
        self._scanned = 0
        self._whole = False  # the caller reads the layer to its end: inflate ahead at once
        self._pool = OutputPool(OUTPUT)  # the inflater's buffers, lent to the scan
        self._read_failure: LayerpeekError | None = None
        self._held: list[bytes] = []  # chunks of the batch being gathered (``_next_batch``)
        self._taken: tuple[Inflated, list[ScanEvent]] | None = None  # see ``_take_feeding``
        self.encoder = IndexEncoder()
        """The index's encoding so far, caught up after each step (see ``encoding``)."""

    @property
    def scanned(self) -> int:
        """Compressed bytes behind the entries found so far."""
        return self._scanned if not self.complete else self.size

    def view(self) -> LayerView:
        return LayerView(self.entries, self.complete, self.scanned, self.size)

    async def advance(
        self, wanted: int | None, on_scan: OnScan | None = None, *, whole: bool = False
    ) -> None:
        """Scan until ``wanted`` entries are known (None: the whole layer) or the layer ends.
        ``whole``: the caller will read every entry, in steps, so the scan inflates ahead
        from its first byte (see ``PREFETCH_AFTER``).

        A damaged layer raises its ``LayerError`` after the entries before the damage have
        been added to ``entries``.

        Cancelling a call leaves the scan whole, wherever it lands, so that the next call
        (another caller of a shared scan) goes on from there: a worker-thread hop runs to its
        end and its result is kept (anyio returns it, or ``_take_feeding`` holds it), the
        network chunks of a batch cut short are held for the next batch (``_next_batch``)
        and a blob read cut short closes its window (``BlobReader.read``).
        """
        self._whole = self._whole or whole or wanted is None
        while not self.complete and (wanted is None or len(self.entries) < wanted):
            scanned = await self._next_scanned()
            if scanned is None:
                if self._read_failure is not None:
                    raise self._read_failure
                await anyio.to_thread.run_sync(self._reader.close)
                self.complete = True
                break
            self._keep(*scanned)
            if on_scan is not None:
                on_scan(self.blob.position, len(self.entries))

    async def _next_scanned(self) -> tuple[Inflated, list[ScanEvent]] | None:
        """The next step, inflated and scanned in one worker-thread hop; None once the blob
        has no more bytes.

        The first ``PREFETCH_AFTER`` bytes are inflated step by step as pages ask for them;
        after that, or from the start when the whole layer is wanted, an ``InflatePump``
        inflates ahead on its own thread and the hop only takes its next step and scans it.
        """
        if self._taken is not None:  # scanned for a call cancelled before it could keep it
            taken, self._taken = self._taken, None
            return taken
        if self._pump is None and self._reader.needs_input:
            if self._whole or self.blob.position >= PREFETCH_AFTER:
                self._pump = InflatePump(self._reader)
            else:
                batch = await self._next_batch()
                if not batch:
                    return None
                self._reader.feed(batch)
        if self._pump is None:
            return await anyio.to_thread.run_sync(self._inflate_and_scan)
        pump = self._pump
        while (scanned := await self._take_feeding(pump)) is None:
            batch = await self._next_batch()
            if not batch:  # the blob has ended: what the feeding gave last is all that is left
                return await self._take_feeding(pump)
            pump.give(batch)
        return scanned

    def _inflate_and_scan(self) -> tuple[Inflated, list[ScanEvent]]:
        """In a worker thread: inflate the next step here and scan it."""
        inflated = self._reader.inflate()
        return inflated, self._scan_and_encode(inflated)

    def _take_and_scan(self, pump: InflatePump) -> tuple[Inflated, list[ScanEvent]] | None:
        """In a worker thread: wait for the pump's next step and scan it; None when the
        pump has run out of input (``InflatePump.take``)."""
        inflated = pump.take()
        return None if inflated is None else (inflated, self._scan_and_encode(inflated))

    def _scan_and_encode(self, inflated: Inflated) -> list[ScanEvent]:
        """In a worker thread: scan the step, and encode what the steps before it found
        (``entries`` grows on the event loop, in ``_keep``, after this returns)."""
        events = self._reader.scan(inflated)
        self._pool.give_back(inflated.pieces)  # scanned: their buffers may be reused
        self.encoder.catch_up(self.entries, self._checkpoints)
        return events

    def _keep(self, inflated: Inflated, events: list[ScanEvent]) -> None:
        """Add a scanned step's entries; raise the layer's error, if it has one, once the
        entries before it are kept."""
        self._scanned = inflated.consumed
        self.entries.extend(
            e for e in events if isinstance(e, TarEntry) and e.path not in self._hidden
        )
        if self._reader.failure is not None:
            raise self._reader.failure

    async def _take_feeding(self, pump: InflatePump) -> tuple[Inflated, list[ScanEvent]] | None:
        """``_take_and_scan`` in a worker thread while the network tops up the pump's input,
        so the inflater never runs dry for want of a read while the scan waits for it. A
        failure is raised as itself, not wrapped in the task group's ExceptionGroup, so
        callers see the LayerError they expect.

        The step is held on the scan as soon as the hop returns: a call cancelled meanwhile
        leaves the task group with the cancellation, and the step, already taken from the
        pump and scanned, would be lost; ``_next_scanned`` gives it to the next call."""
        work = partial(anyio.to_thread.run_sync, self._take_and_scan, pump)
        if not pump.wants_input:
            return await work()
        working = True

        async def feed() -> None:
            while working and pump.wants_input and (batch := await self._next_batch()):
                pump.give(batch)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(feed)
                try:
                    self._taken = await work()
                finally:
                    working = False
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None
        taken, self._taken = self._taken, None
        return taken

    async def _next_batch(self) -> bytes:
        """Network chunks joined into batches of growing size: the first small, so a first
        page comes soon, then up to ``SCAN_BATCH`` so a thread hand-over carries enough work.

        A read that fails (a connection gone for good, a blob that does not hash to its
        digest) ends the input instead of discarding the batch it interrupts: the scan takes
        what arrived, and ``advance`` raises the failure where the input would have ended.
        Chunks gathered before a cancellation stay held for the next batch: the blob reader
        has counted and hashed them, and will not deliver them again.
        """
        held = self._held
        try:
            while self._read_failure is None and sum(map(len, held)) < self._batch:
                if not (chunk := await self.blob.read()):
                    break
                held.append(chunk)
        except LayerpeekError as exc:
            self._read_failure = exc
        self._batch = min(self._batch * 2, SCAN_BATCH)
        batch = b"".join(held)
        held.clear()
        return batch

    def _decompressor(self, kind: Compression) -> Decompressor:
        """gzip through the checkpoint builder: the scan that lists a layer indexes it too."""
        self.compression = kind
        if kind == "zstd":
            self._zstd = ZstdDecompressor()
            return self._zstd
        if kind != "gzip":
            return make_decompressor(kind)
        self._inflater = CheckpointInflater(pool=self._pool)
        return self._inflater

    def index(self, digest: str) -> LayerIndex:
        """What the scan knows, as an index: complete once the scan is, else its entries and
        checkpoints so far (enough to read any file already passed by range)."""
        frames = _spaced(self._zstd.frames) if self._zstd else []
        return LayerIndex(digest, self.compression, self.entries, self._checkpoints, frames)

    @property
    def _checkpoints(self) -> list[Checkpoint]:
        """The gzip checkpoints found so far (none for other compressions)."""
        return self._inflater.checkpoints if self._inflater else []

    async def aclose(self) -> None:
        if self._pump is not None:
            self._pump.close()
        self._pool.close()
        await self.blob.aclose()


def _spaced(frames: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Frame starts about ``SPACING`` apart (zstd:chunked has one per file); none when the
    layer is a single frame, which offers no place to start but the beginning."""
    kept: list[tuple[int, int]] = []
    for frame in frames:
        if not kept or frame[1] - kept[-1][1] >= SPACING:
            kept.append(frame)
    return kept if len(kept) > 1 else []
