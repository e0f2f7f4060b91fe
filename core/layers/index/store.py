"""Indexes by digest (``LayerIndexes``): recent ones in memory, all in the cache, the rest
built by scans that callers share: one scan of a layer at a time in a process, one between
processes sharing a cache (its lease), one look in the cache or at the TOC for all who ask
at once (``flight``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import anyio
import anyio.to_thread

from layerpeek.core.cache.interface import LEASE_RENEW, CacheStore, key_for, wait_for_lease
from layerpeek.core.errors import (
    CorruptLayer,
    LayerError,
    RangeNotSupported,
)
from layerpeek.core.flight import Flights
from layerpeek.core.image.manifest import Descriptor
from layerpeek.core.layers.compression import (
    Compression,
)
from layerpeek.core.layers.entry import LAYER_LIMITS
from layerpeek.core.layers.index.builder import LayerScan
from layerpeek.core.layers.index.model import LayerIndex, LayerView, OnScan
from layerpeek.core.layers.reader import BlobReader
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

    async def _stored_elsewhere(
        self, ref: Reference, layer: Descriptor, live: _Live
    ) -> LayerIndex | None:
        """Before a full scan starts, take the layer's lease in the cache, so that processes
        sharing the cache scan it once (``interface.wait_for_lease``). The index when the
        process we waited for stored it (now also ``live.index``; the scan is dropped unread);
        else None, and the scan holds the lease until its index is stored or it ends without
        one. Called under the scan's lock: this process's other callers wait for this scan,
        not for the lease. A scan already begun (by a page) goes on unleased."""
        begun = live.leased or live.scan.scanned or live.scan.entries
        if begun or not await wait_for_lease(self.cache, scope := key_for(ref, layer.digest)):
            return None
        live.leased = True
        index = live.index = await self.complete(ref, layer)
        if index is None:
            return None
        await self._drop(scope, live)
        await self.cache.release_lease(scope)
        return index

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
                if lease and (stored := await self._stored_elsewhere(ref, layer, live)) is not None:
                    return self._whole_view(layer, stored), stored
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
            old = self._live[key]
            if key != scope and not old.lock.locked():
                await self._drop(key, old)
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
