"""Layer indexes: every entry of a layer, learnt once per digest, then served from the cache.

A listing asks ``LayerIndexes.view(..., wanted=N)`` for the first N entries. A layer known in
full (cached by an earlier scan) answers without touching the network. Otherwise a
``LayerScan`` (blob reader + decompressor + tar scanner) reads just far enough, and stays
alive between pages, so page 2 continues from where page 1 stopped instead of reading the
layer again. When a scan reaches the end of the layer its complete index is stored in the
cache.

``LayerIndexes.complete`` is the one place that knows a layer in full without scanning it
(memory, then the cache). A listing from a TOC (``toc.read_toc``: eStargz, zstd:chunked)
belongs there, after the cache and before a scan, so later listings cost nothing.

What is shared by digest is what was checked against the digest. A scan stores its index
only once it has read the whole blob and the blob hashed to the layer's digest
(``BlobReader``); an open scan is shared only once it has. Everything is kept within the
registry that served it (``cache.key_for``); a TOC, which only the manifest's annotation
vouches for, within its repository. A registry that lies about a digest cannot change what
another registry's image lists, nor learn what another registry's layer holds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial

import anyio
import anyio.to_thread

from layerpeek.core.cache.store import LEASE_RENEW, CacheStore, key_for, wait_for_lease
from layerpeek.core.errors import (
    CorruptLayer,
    LayerError,
    LayerpeekError,
    RangeNotSupported,
    TruncatedLayer,
)
from layerpeek.core.flight import Flights
from layerpeek.core.image.documents import Descriptor
from layerpeek.core.layers.buffers import OutputPool
from layerpeek.core.layers.checkpoints import (
    OUTPUT,
    SPACING,
    Checkpoint,
    CheckpointInflater,
    Resume,
    end_for,
    nearest,
)
from layerpeek.core.layers.compression import (
    Compression,
    Decompressor,
    ZstdDecompressor,
    make_decompressor,
)
from layerpeek.core.layers.encoding import IndexEncoder, decode
from layerpeek.core.layers.entry import LAYER_LIMITS, TarEntry
from layerpeek.core.layers.pump import InflatePump
from layerpeek.core.layers.reader import MAX_WINDOW, BlobReader
from layerpeek.core.layers.scan import FIRST_BATCH, Inflated, LayerReader, ScanEvent
from layerpeek.core.layers.toc.footer import announces_toc, read_toc
from layerpeek.core.layers.toc.model import TOC_ARTIFACTS, Toc
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.reference import Reference

LIVE_SCANS = 8
"""Scans kept open between pages; the least recently used beyond this is closed."""
KNOWN_INDEXES = 4
"""Complete indexes kept in memory; the rest are in the cache. An index holds ~350-390 bytes
an entry plus a byte a character of its name (``entry.TarEntry``; a 50k-entry layer ~22 MB),
and its encoding for the cache ~20-27 bytes an entry (``encoding``)."""
KNOWN_ENTRIES = LAYER_LIMITS.entries
"""Entries of the complete indexes kept in memory, together: the most recent index is kept
whatever its size, older ones only while the total stays under this (~1 GB)."""
LIVE_TTL = 300.0
"""Seconds an idle scan stays open: long enough to read a page, short enough to free sockets."""

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
stepping through the first 4 MiB cost a full listing ~50 ms more than inflating them ahead."""

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


@dataclass
class _Live:
    """A scan shared by the callers of one layer, one step at a time under ``lock``, and
    what became of it: a caller that waited for the lock finds the complete ``index`` or
    the ``failure`` of the step before its turn, or that the scan was ``closed`` (idle or
    surplus) and takes a fresh one."""

    scan: LayerScan
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    used: float = field(default_factory=time.monotonic)
    index: LayerIndex | None = None
    failure: Exception | None = None
    closed: bool = False
    leased: bool = False  # holds the cache's lease of the layer until its index is stored


class LayerIndexes:
    """Indexes by digest: recent ones in memory, all in the cache, the rest built by scans."""

    def __init__(self, client: RegistryClient, cache: CacheStore) -> None:
        self.client = client
        self.cache = cache
        self._live: dict[str, _Live] = {}  # by ``key_for``: a scan is checked at its end
        self._known: dict[str, LayerIndex] = {}  # by cache key
        self._tocs: dict[str, Toc] = {}  # by ``key_for`` of the repository
        self._completes: Flights[str, LayerIndex | None] = Flights()  # by ``key_for``
        self._toc_reads: Flights[str, Toc | None] = Flights()  # by ``key_for`` of the repository

    async def cached(self, digest: str, key: str) -> LayerIndex | None:
        """The complete index of layer ``digest`` kept under ``key`` (``key_for``), if one is
        known, without reading the layer."""
        if key in self._known:
            return self._known[key]
        data = await self.cache.get("index", key)
        if data is None:
            return None
        # Decoding tens of thousands of entries takes longer than the loop may be blocked.
        index = await anyio.to_thread.run_sync(LayerIndex.from_bytes, data, digest)
        if index is not None:
            self._remember(key, index)
        return index

    async def complete(self, ref: Reference, layer: Descriptor) -> LayerIndex | None:
        """The layer's complete index when it is known without scanning the blob: from the
        cache (verified by a scan, or from this repository's TOC), or from the layer's own
        table of contents (eStargz, zstd:chunked). Concurrent calls for one layer share one
        look (``flight``): one decoding of a cached index, one TOC read, one index stored."""
        scope = key_for(ref, layer.digest, repository=True)
        return await self._completes.run(scope, partial(self._find_complete, ref, layer))

    async def _find_complete(self, ref: Reference, layer: Descriptor) -> LayerIndex | None:
        """The look ``complete`` shares between the callers that want it at once."""
        index = await self.cached(layer.digest, key_for(ref, layer.digest))
        if index is not None:
            return index
        key = key_for(ref, layer.digest, repository=True)
        index = await self.cached(layer.digest, key)
        if index is not None:
            return index
        toc = await self.toc(ref, layer)
        if toc is None:
            return None
        # A TOC records no tar offsets and no checkpoints: reading a file goes through the
        # TOC's chunks (``toc()``), never through ``read_ranged``.
        kind: Compression = "gzip" if toc.format == "estargz" else "zstd"
        index = LayerIndex(layer.digest, kind, list(toc.entries))
        self._remember(key, index)
        await self.cache.put("index", key, await anyio.to_thread.run_sync(index.to_bytes))
        return index

    async def toc(self, ref: Reference, layer: Descriptor) -> Toc | None:
        """The layer's TOC when its annotations announce one and it reads and verifies.

        None otherwise: a TOC that is missing, broken or fails its digest costs us nothing but
        the small reads that found out, because the blob is still an ordinary tar.gz/tar.zst
        and scanning it gives the same listing.
        """
        if not announces_toc(layer.annotations):
            return None
        key = key_for(ref, layer.digest, repository=True)
        if key in self._tocs:
            return self._tocs[key]
        return await self._toc_reads.run(key, partial(self._read_toc, ref, layer, key))

    async def _read_toc(self, ref: Reference, layer: Descriptor, key: str) -> Toc | None:
        """Read and keep the TOC ``toc`` wants; one read for all who want it at once."""
        fetch = partial(self.client.fetch_range, ref, layer.digest)
        try:
            toc = await read_toc(fetch, layer.size, layer.annotations)
        except (CorruptLayer, RangeNotSupported):
            return None
        if toc is None:
            return None
        self._tocs[key] = toc
        while len(self._tocs) > KNOWN_INDEXES:
            self._tocs.pop(next(iter(self._tocs)))
        return toc

    async def view(
        self,
        ref: Reference,
        layer: Descriptor,
        wanted: int | None,
        on_scan: OnScan | None = None,
        *,
        whole: bool = False,
    ) -> LayerView:
        """At least ``wanted`` entries of ``layer`` (fewer only if it has fewer; None: all).
        ``whole``: the caller goes on to read all of it (``LayerScan.advance``).

        A damaged layer answers with the entries before the damage and the damage as its
        ``problem``, rather than an error: a listing shows what was read."""
        index = await self._complete_unless_scanning(ref, layer)
        if index is not None:
            return self._whole_view(layer, index)
        view, _ = await self._advance(
            ref,
            layer,
            partial(LayerScan.advance, wanted=wanted, on_scan=on_scan, whole=whole),
            damage_as_view=True,
            lease=whole or wanted is None,
        )
        return view

    async def _complete_unless_scanning(
        self, ref: Reference, layer: Descriptor
    ) -> LayerIndex | None:
        """``complete``, skipped for a layer being scanned: it is not complete anywhere yet,
        and a listing that pages through it batch by batch must not ask the cache each time."""
        scanning = key_for(ref, layer.digest) in self._live
        return None if scanning else await self.complete(ref, layer)

    async def _stored_elsewhere(self, ref: Reference, layer: Descriptor, live: _Live) -> bool:
        """Before a full scan starts, take the layer's lease in the cache, so that processes
        sharing the cache scan it once (``cache.wait_for_lease``). True when the process we
        waited for stored the index (now ``live.index``; the scan is dropped unread); else
        the scan holds the lease until its index is stored or it ends without one. Called
        under the scan's lock: this process's other callers wait for this scan, not for the
        lease. A scan already begun (by a page) goes on unleased."""
        begun = live.leased or live.scan.scanned or live.scan.entries
        if begun or not await wait_for_lease(self.cache, scope := key_for(ref, layer.digest)):
            return False
        live.leased = True
        live.index = await self.complete(ref, layer)
        if live.index is None:
            return False
        await self._drop(scope, live)
        await self.cache.release_lease(scope)
        return True

    async def _advance(
        self,
        ref: Reference,
        layer: Descriptor,
        step: Callable[[LayerScan], Awaitable[None]],
        *,
        partial_index: bool = False,
        damage_as_view: bool = False,
        lease: bool = False,
    ) -> tuple[LayerView, LayerIndex | None]:
        """Run ``step`` on the layer's live scan; store the index once the scan completes.
        Returns the view and the index: the complete one, or with ``partial_index`` the one
        as far as the scan went (None otherwise: listings page without it). With
        ``damage_as_view``, a ``LayerError`` is returned as the view's ``problem``, with the
        entries the scan kept before it. With ``lease``, a scan not yet begun first takes
        the layer's lease in the cache (``_stored_elsewhere``).

        Callers of one layer share its scan, one step at a time. A caller cancelled during
        its step leaves the scan whole (``LayerScan.advance``) for those waiting. A step
        that fails ends the scan: the failure is raised to the caller and to every caller
        that was waiting for that scan. The caller whose step completes the scan stores
        the index, once; those waiting answer from it.
        """
        scope = key_for(ref, layer.digest)
        while True:
            live = await self._take_live(ref, layer, scope)
            async with live.lock:
                if live.index is not None:
                    return self._whole_view(layer, live.index), live.index
                if live.closed and live.failure is None:
                    continue  # closed while this caller waited (idle, surplus): a fresh one
                if lease and await self._stored_elsewhere(ref, layer, live):
                    return self._whole_view(layer, live.index), live.index
                try:
                    if live.failure is not None:
                        raise live.failure
                    await self._step(scope, live, step)
                except LayerError as problem:
                    if not damage_as_view:
                        raise
                    scan = live.scan
                    view = LayerView(scan.entries, False, scan.scanned, layer.size, None, problem)
                    return view, None
                if not live.scan.complete:
                    known = live.scan.index(layer.digest) if partial_index else None
                    return live.scan.view(), known
                # Complete means the blob was read to its end and hashed to its digest:
                # shareable. Remembered before the scan is dropped, so that no caller
                # finds neither and starts another scan.
                index = live.index = live.scan.index(layer.digest)
                self._remember(scope, index)
                await self._drop(scope, live)
            await self._store(scope, live.scan, index)
            if live.leased:
                with anyio.CancelScope(shield=True):
                    await self.cache.release_lease(scope)
            return self._whole_view(layer, index), index

    async def _step(
        self, scope: str, live: _Live, step: Callable[[LayerScan], Awaitable[None]]
    ) -> None:
        """Run one caller's ``step`` on a scan it holds the lock of (see ``_advance``)."""
        try:
            await self._renewing(scope, live, step)
        except anyio.get_cancelled_exc_class():
            # The scan is whole (``LayerScan.advance``): callers waiting go on with it. With
            # none waiting it is closed now rather than kept for ``LIVE_TTL`` with its
            # connection and buffers; a caller that comes later starts afresh.
            if live.lock.statistics().tasks_waiting:
                live.used = time.monotonic()
            else:
                await self._drop(scope, live)
            raise
        except Exception as failure:
            live.failure = failure  # a failed scan is never resumed
            await self._drop(scope, live)
            raise
        except BaseException:
            await self._drop(scope, live)
            raise
        live.used = time.monotonic()
        if live.leased:
            await self.cache.renew_lease(scope)

    async def _renewing(
        self, scope: str, live: _Live, step: Callable[[LayerScan], Awaitable[None]]
    ) -> None:
        """``step``, renewing the scan's lease meanwhile: one step may read a whole layer,
        for longer than a lease lasts unrenewed. The step's own exception is raised as it is
        (not in a group); the renewals raise none (``CacheStore.renew_lease``)."""
        if not live.leased:
            await step(live.scan)
            return
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._renew, scope)
            try:
                await step(live.scan)
            except Exception as exc:
                failure = exc
            group.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _renew(self, scope: str) -> None:
        while True:
            await anyio.sleep(LEASE_RENEW)
            await self.cache.renew_lease(scope)

    async def _store(self, scope: str, scan: LayerScan, index: LayerIndex) -> None:
        """Encode the complete index and keep it in the cache, even while being cancelled:
        the scan it took is done, and no one else will store it."""
        with anyio.CancelScope(shield=True):
            encoded = await anyio.to_thread.run_sync(scan.encoder.finish, index)
            await self.cache.put("index", scope, encoded)

    @staticmethod
    def _whole_view(layer: Descriptor, index: LayerIndex) -> LayerView:
        return LayerView(index.entries, True, layer.size, layer.size, index)

    async def _take_live(self, ref: Reference, layer: Descriptor, scope: str) -> _Live:
        """The open scan of this layer from this registry, or a new one (closing idle and
        surplus scans)."""
        now = time.monotonic()
        idle = [k for k, live in self._live.items() if now - live.used > LIVE_TTL]
        surplus = sorted(self._live, key=lambda k: self._live[k].used)[: -LIVE_SCANS + 1]
        for key in dict.fromkeys([*idle, *surplus]):
            live = self._live[key]
            if key != scope and not live.lock.locked():
                await self._drop(key, live)
        live = self._live.get(scope)
        if live is None:
            blob = BlobReader(self.client, ref, layer.digest, end=layer.size or None)
            # An eStargz layer scanned as plain tar.gz (its TOC unreadable) still holds the
            # format's own entries; they are not files of the image.
            hidden = TOC_ARTIFACTS if announces_toc(layer.annotations) else frozenset()
            live = self._live[scope] = _Live(LayerScan(blob, layer.size, hidden))
        return live

    async def _drop(self, scope: str, live: _Live) -> None:
        """Forget a scan and close its connection, even while being cancelled."""
        live.closed = True
        if self._live.get(scope) is live:
            del self._live[scope]
        with anyio.CancelScope(shield=True):
            await live.scan.aclose()
            if live.leased and live.index is None:  # else released once the index is stored
                await self.cache.release_lease(scope)

    def _remember(self, key: str, index: LayerIndex) -> None:
        """Keep a few complete indexes in memory: a repeat listing skips even the cache."""
        self._known.pop(key, None)
        self._known[key] = index
        held = sum(len(known.entries) for known in self._known.values())
        while len(self._known) > KNOWN_INDEXES or (len(self._known) > 1 and held > KNOWN_ENTRIES):
            held -= len(self._known.pop(next(iter(self._known))).entries)


def _spaced(frames: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Frame starts about ``SPACING`` apart (zstd:chunked has one per file); none when the
    layer is a single frame, which offers no place to start but the beginning."""
    kept: list[tuple[int, int]] = []
    for frame in frames:
        if not kept or frame[1] - kept[-1][1] >= SPACING:
            kept.append(frame)
    return kept if len(kept) > 1 else []


def _frame_for(frames: list[tuple[int, int]], start: int, stop: int) -> tuple[int, int, int | None]:
    """The frame start at or before ``start`` (compressed, uncompressed) and a blob offset
    past the data up to ``stop``: the next kept frame start at or after it, else None."""
    begin = max((f for f in frames if f[1] <= start), key=lambda f: f[1])
    end = next((c for c, u in frames if u >= stop), None)
    return begin[0], begin[1], end


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


async def read_ranged(
    client: RegistryClient, ref: Reference, index: LayerIndex, entry: TarEntry
) -> AsyncIterator[bytes]:
    """The data of a regular file ``entry`` of an indexed layer, with one Range request: the
    bytes themselves when the layer is a plain tar, else the compressed data from the nearest
    gzip checkpoint (or zstd frame start) to the first one past the file, decompressed in a
    worker thread."""
    if index.compression == "none":
        start, end, window = entry.offset, entry.offset + entry.size, max(entry.size, 1)
        async with aclosing(
            BlobReader(client, ref, index.digest, start=start, end=end, window=window).chunks()
        ) as chunks:
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
