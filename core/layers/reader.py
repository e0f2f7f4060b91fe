"""Read a blob through Range windows that grow, resuming where a dropped connection stopped.

A first page of a listing needs the first few hundred KiB of a layer; a full scan needs all
of it in as few requests as possible. So the first window is small and each next one is
``GROWTH`` times larger, up to ``MAX_WINDOW``. The reader counts every byte it hands out, so
when a connection drops mid-window (or a 5xx answers the next request, which the client's
retries absorb) it asks again from the next byte it still needs: what the consumer sees is
identical to one unbroken read. A registry that answers a Range request with 200 and the
whole blob is read by streaming that body, skipping what was already delivered.

The first window of a read goes through httpx (auth, redirects, retries, errors); the
windows after it are read on the route that answer found, by the client's ``bulk`` reader in
a worker thread, much faster and without holding the interpreter lock (``core.bulk``). When
a bulk window cannot be opened or drops, the next one goes through httpx again.

A read from the blob's first byte to its end is hashed as it goes and checked against the
digest it was asked for by, before the end is reported: whatever is built from a whole read
(a layer's index, a download) is built from the blob the digest names, or fails loudly.

Both kinds of window read under one minimum rate for the whole blob (``core.rate``): a
registry that trickles fails the read with one line, however it spaces its bytes. A bulk
window holds one of the registry host's slots, like an httpx response, and its reads run on
that host's worker threads, so a slow registry cannot take the threads others need.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol

import anyio
import anyio.to_thread
import httpx

from layerpeek.core.errors import LayerpeekError, RegistryTooSlow, RegistryUnreachable
from layerpeek.core.registry.bulk import BulkBody, BulkError, BulkTimeout, Route, content_range
from layerpeek.core.registry.client import DigestCheck, RegistryClient
from layerpeek.core.registry.rate import MinimumRate
from layerpeek.core.registry.reference import Reference

FIRST_WINDOW = 256 << 10
GROWTH = 4
MAX_WINDOW = 32 << 20
"""Largest window: a short transfer on a local network, few requests for a full scan."""
ATTEMPTS = 4
"""Consecutive drops without a single new byte before the reader gives up."""

OnBytes = Callable[[int], object]
"""Called with the number of blob bytes delivered so far."""

_DROPS = (httpx.TransportError, *BulkError)


class _Window(Protocol):
    """One open range response, read chunk by chunk."""

    async def next(self) -> bytes:
        """The next chunk; ``b""`` at the body's end."""
        ...

    async def aclose(self) -> None: ...


class _HttpxWindow:
    def __init__(self, response: httpx.Response, floor: MinimumRate) -> None:
        self._response = response
        self._body = response.aiter_raw()
        self._floor = floor

    async def next(self) -> bytes:
        return await self._floor.wait(self._chunk)

    async def _chunk(self) -> bytes:
        return await anext(self._body, b"")

    async def aclose(self) -> None:
        await self._response.aclose()


class _BulkWindow:
    """A bulk body read on its host's worker threads; closing it frees the host's slot."""

    def __init__(
        self, body: BulkBody, threads: anyio.CapacityLimiter, release: Callable[[], None]
    ) -> None:
        self._body = body
        self._threads = threads
        self._release: Callable[[], None] | None = release

    async def next(self) -> bytes:
        return await anyio.to_thread.run_sync(self._body.read, limiter=self._threads)

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            self._body.close()
        finally:
            if release is not None:
                release()


class BlobReader:
    """Bytes ``start`` to ``end`` (exclusive; None: the blob's end) of one blob, in order.

    ``read()`` returns the next chunk, ``b""`` at the end. The response of the current window
    stays open between calls, so a listing paused after a page resumes mid-window without a
    new request; ``aclose()`` releases it.
    """

    def __init__(
        self,
        client: RegistryClient,
        ref: Reference,
        digest: str,
        *,
        start: int = 0,
        end: int | None = None,
        window: int = FIRST_WINDOW,
        on_bytes: OnBytes | None = None,
    ) -> None:
        self.client = client
        self.ref = ref
        self.digest = digest
        self.position = start
        self.end = end
        self.window = window
        self.requests = 0
        self.bulk_requests = 0
        """Of ``requests``, those answered on the bulk route."""
        self._on_bytes = on_bytes
        self._window: _Window | None = None
        self._route: Route | None = None
        self._window_end: int | None = None
        self._skip = 0
        self._drops = 0
        self._check = DigestCheck(digest, f"a blob of {ref.name}") if start == 0 else None
        """Hashes every byte delivered when the read starts at byte 0; checked at the end."""
        settings = client.settings
        self._floor = MinimumRate(
            settings.min_rate, settings.rate_window, f"registry {ref.registry} sent blob {digest}"
        )

    @property
    def done(self) -> bool:
        return self.end is not None and self.position >= self.end

    async def read(self) -> bytes:
        """The next chunk of the blob; ``b""`` once ``end`` (or the blob's end) is reached."""
        while not self.done:
            if self._window is None:
                await self._open()
                continue
            try:
                chunk = await self._next_chunk()
            except anyio.get_cancelled_exc_class():
                # A body read cut short may have lost a chunk inside httpx: the next read
                # asks again from ``position`` (a layer scan goes on for another caller).
                with anyio.CancelScope(shield=True):
                    await self.aclose()
                raise
            if chunk is None:
                continue
            if not chunk:
                self.end = self.position  # a whole-blob (200) body ended: the blob's end
            elif chunk := self._deliver(chunk):
                return chunk
        await self.aclose()
        if self._check is not None:
            check, self._check = self._check, None
            check.verify()
        return b""

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Every remaining chunk; the reader is closed when the iteration stops."""
        try:
            while chunk := await self.read():
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the open window, if any; a later ``read`` opens a new one at ``position``."""
        window, self._window = self._window, None
        if window is not None:
            await window.aclose()

    def _deliver(self, chunk: bytes) -> bytes:
        if self._skip:
            chunk, self._skip = chunk[self._skip :], max(0, self._skip - len(chunk))
        if self.end is not None and self.position + len(chunk) > self.end:
            chunk = chunk[: self.end - self.position]
        self.position += len(chunk)
        self._drops = 0
        if self._check is not None:
            self._check.update(chunk)
        if self._on_bytes is not None and chunk:
            self._on_bytes(self.position)
        return chunk

    async def _next_chunk(self) -> bytes | None:
        """The next body chunk; ``b""`` at the body's end, None after a drop (re-opened)."""
        assert self._window is not None
        try:
            chunk = await self._window.next()
        except _DROPS as exc:
            self._route = None  # the next window goes through httpx and its retries
            await self._dropped(exc)
            return None
        if not chunk and self._window_end is not None:
            await self.aclose()
            if self.position < self._window_end:
                await self._dropped(None)  # the body ended before the range it promised
            return None
        return chunk

    async def _dropped(self, exc: Exception | None) -> None:
        """Count a drop; the next ``read`` asks again from ``position``."""
        await self.aclose()
        self._drops += 1
        if self._drops >= ATTEMPTS:
            why = f": {exc}" if exc else ""
            raise RegistryUnreachable(
                f"connection to {self.ref.registry} dropped {ATTEMPTS} times while reading "
                f"blob {self.digest} at byte {self.position:,}{why}"
            )

    async def _open(self) -> None:
        """Ask for the next window; a 200 answer is the whole blob, read past ``position``."""
        last = self.position + self.window - 1
        if self.end is not None:
            last = min(last, self.end - 1)
        self.requests += 1
        if self._route is not None and await self._open_bulk(self._route, last):
            return
        response = await self.client.open_blob(self.ref, self.digest, self.position, last)
        self._window = _HttpxWindow(response, self._floor)
        if response.status_code == 206:
            self._window_end = self._check_range(response, last)
            self._route = self.client.bulk.route(response)
            self.window = min(self.window * GROWTH, MAX_WINDOW)
        else:
            self._window_end, self._skip = None, self.position

    async def _open_bulk(self, route: Route, last: int) -> bool:
        """Open the window on the bulk route; False (and the route forgotten) when it does
        not answer with exactly this range. With every slot of the host taken, False too:
        httpx then waits for one, under its deadline."""
        host = self.client.host(self.ref)
        try:
            host.requests.acquire_nowait()
        except anyio.WouldBlock:
            return False
        body: BulkBody | None = None
        seconds = self.client.settings.deadline
        try:
            body = await anyio.to_thread.run_sync(
                self.client.bulk.open,
                route,
                self.position,
                last,
                self._floor,
                seconds,
                limiter=host.threads,
            )
        except BulkError:
            pass
        except BulkTimeout:
            raise RegistryTooSlow(
                f"registry {self.ref.registry} did not answer for bytes {self.position}-{last} "
                f"of blob {self.digest} within {seconds:g} s (LAYERPEEK_DEADLINE)"
            ) from None
        finally:
            if body is None:
                host.requests.release()
        if body is None:
            self._route = None
            return False
        self.bulk_requests += 1
        self._window = _BulkWindow(body, host.threads, host.requests.release)
        self._window_end = body.end
        if body.total is not None and self.end is None:
            self.end = body.total
        self.window = min(self.window * GROWTH, MAX_WINDOW)
        return True

    def _check_range(self, response: httpx.Response, last: int) -> int:
        """The end (exclusive) of the range the registry sent; it must start where we asked."""
        sent = content_range(response.headers.get("Content-Range"))
        if sent is None or sent[0] != self.position:
            raise LayerpeekError(
                f"blob {self.digest} of {self.ref.name}: the registry sent range "
                f"{response.headers.get('Content-Range', 'none')!r} for bytes {self.position}-"
                f"{last}; try again, or report the registry"
            )
        if sent[2] is not None and self.end is None:
            self.end = sent[2]
        return sent[1] + 1
