"""Large blob ranges read in a worker thread over ``http.client``, beside httpx.

httpx parses response bodies in Python at ~250 MB/s, holding the interpreter lock the whole
time, which during a full scan is the lock the decompressor and the tar scanner need too.
The standard library's ``http.client`` reads a body with one buffered ``readinto`` per
chunk (>1 GB/s here, the lock released while the socket is read). So a blob is read in two
ways, and httpx stays the one that decides:

- httpx asks for a blob range with the whole protocol (auth flow, token refresh, redirects,
  retries, errors as one-line messages). Its 206 answer tells which URL served the bytes (a
  registry, or the CDN it redirected to) and which headers that request carried: a ``Route``.
- Later ranges of the same blob are asked of that route directly (``BulkReader.open``),
  connecting through the same network guard and TLS settings. Anything but the expected 206
  (an expired token or CDN signature, a rate limit, an error) returns None, and the caller
  asks httpx again, which handles it and yields a fresh route.

Through a proxy (``HTTPS_PROXY`` and friends, honoured by the unguarded client) no route is
offered: the proxy is httpx's business.

A body is read one socket read at a time (``read1``), each bounded by what the stream's
minimum rate (``core.rate``) still allows, so a registry that trickles bytes into a bulk
window fails it as it would fail an httpx window, instead of holding a worker thread. The
exchange before the body (TLS handshake, request, status line and headers) has a total time,
kept by a watchdog that shuts the socket down when it is up (``BulkTimeout``).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass

import httpx

from layerpeek.core.registry.guard import NetworkGuard, connect
from layerpeek.core.registry.rate import MinimumRate

READ_SIZE = 1 << 20
"""Bytes per ``read``: one worker-thread hop per MiB."""

_KEPT_HEADERS = ("authorization", "user-agent")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

BulkError = (OSError, http.client.HTTPException)
"""What a dropped or broken bulk connection raises: the caller resumes from its position."""


class BulkTimeout(Exception):
    """A bulk answer did not reach its body (handshake, request, headers) in the time given."""


class _Watchdog:
    """Shuts a socket down once ``seconds`` have passed, so that a read blocked on it in
    another thread returns at once. Per-read socket timeouts cannot bound a whole exchange:
    a peer may send one byte just before each would expire."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock = sock
        """The socket to shut down: the TLS one once it wraps the connection."""
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        # The plain socket's shutdown, also for a TLS socket: no TLS state is touched while
        # the reading thread may be inside it.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


@dataclass(frozen=True)
class Route:
    """Where a blob's bytes were last served from, and the headers that request carried."""

    url: httpx.URL
    headers: tuple[tuple[str, str], ...]


class BulkBody:
    """One open 206 body; ``read`` returns up to ``READ_SIZE`` bytes, ``b""`` at its end.

    ``end`` (exclusive) is where the range the server sent ends, ``total`` the blob's size
    when the server said it. Once paced (``pace``), each socket read waits at most what the
    stream's minimum rate allows (and at most ``timeout``, a drop like any other).
    """

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        end: int,
        total: int | None,
    ) -> None:
        self._connection = connection
        self._response = response
        self.end = end
        self.total = total
        self._socket: socket.socket | None = None
        self._floor: MinimumRate | None = None
        self._timeout: float | None = None

    def pace(self, sock: socket.socket, floor: MinimumRate, timeout: float | None) -> None:
        """Read at ``floor``'s minimum rate from ``sock`` (the connection's socket, taken
        before a response that will close the connection took it over)."""
        self._socket, self._floor, self._timeout = sock, floor, timeout

    def read(self) -> bytes:
        """The next bytes of the range; raises a ``BulkError`` when the connection drops and
        ``RegistryTooSlow`` when the stream falls below its minimum rate."""
        parts: list[bytes] = []
        size = 0
        while size < READ_SIZE:
            data = self._read1(READ_SIZE - size)
            if not data:
                break
            parts.append(data)
            size += len(data)
        # The end of a Content-Length body leaves ``length`` at 0 (read1 does not close).
        if not parts and not self._response.isclosed() and self._response.length != 0:
            raise http.client.IncompleteRead(b"")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read1(self, most: int) -> bytes:
        """At most ``most`` bytes from one socket read, counted against the floor."""
        if self._floor is None or self._socket is None:
            return self._response.read1(most)
        allowance = self._floor.allowance()
        if allowance <= 0:
            raise self._floor.too_slow()
        limit = allowance if self._timeout is None else min(allowance, self._timeout)
        self._socket.settimeout(limit)
        started = time.monotonic()
        try:
            data = self._response.read1(most)
        except TimeoutError:
            if limit == allowance:
                raise self._floor.too_slow() from None
            raise
        self._floor.received(len(data), time.monotonic() - started)
        return data

    def close(self) -> None:
        """Drop the connection: a body abandoned mid-range leaves it unusable anyway."""
        self._response.close()
        self._connection.close()


class BulkReader:
    """Opens blob ranges on a ``Route`` with the client's guard, TLS and timeout."""

    def __init__(
        self,
        guard: NetworkGuard | None,
        tls: ssl.SSLContext,
        timeout: float,
        *,
        use_proxies: bool,
    ) -> None:
        """``use_proxies``: the httpx client honours proxy variables, so routes through a
        proxy are not offered."""
        self._guard = guard
        self._tls = tls
        self._timeout = timeout
        self._use_proxies = use_proxies

    def route(self, response: httpx.Response) -> Route | None:
        """The route of a 206 answer from httpx; None when bulk reads must not take it."""
        url = response.request.url
        if url.scheme not in ("http", "https") or self._proxied(url):
            return None
        headers = tuple(
            (name, value)
            for name, value in response.request.headers.items()
            if name.lower() in _KEPT_HEADERS
        )
        return Route(url, headers)

    def open(
        self,
        route: Route,
        start: int,
        last: int,
        floor: MinimumRate | None = None,
        seconds: float | None = None,
    ) -> BulkBody | None:
        """GET bytes ``start``-``last`` on ``route``; None unless the answer is exactly that
        range (206 with a matching Content-Range). Blocking: run it in a worker thread.
        ``floor``: the minimum rate the body is read at (see ``BulkBody``); ``seconds``: the
        time from the connection to the answer's headers (default: the client's timeout),
        past which ``BulkTimeout``."""
        limit = self._timeout if seconds is None else seconds
        sock = self._socket(route.url)
        watchdog = _Watchdog(sock, limit)
        try:
            connection = self._connection(route.url, sock, watchdog)
            sock = connection.sock
            try:
                connection.request(
                    "GET",
                    route.url.raw_path.decode("ascii"),
                    headers={**dict(route.headers), "Range": f"bytes={start}-{last}"},
                )
                response = connection.getresponse()
            except BaseException:
                connection.close()
                raise
        except (OSError, http.client.HTTPException):
            if watchdog.fired:
                raise BulkTimeout(f"no answer within {limit:g} s") from None
            raise
        finally:
            watchdog.cancel()
        if watchdog.fired:  # headers cut short by the shutdown still parse: not an answer
            response.close()
            connection.close()
            raise BulkTimeout(f"no answer within {limit:g} s")
        sent = (
            content_range(response.getheader("Content-Range")) if response.status == 206 else None
        )
        if sent is not None and sent[0] == start:
            body = BulkBody(connection, response, sent[1] + 1, sent[2])
            if floor is not None:
                body.pace(sock, floor, self._timeout)
            return body
        response.close()
        connection.close()
        return None

    def _socket(self, url: httpx.URL) -> socket.socket:
        """A TCP connection to ``url``'s host, opened through the guard."""
        return connect(self._guard, url.host, self._port(url), self._timeout)

    @staticmethod
    def _port(url: httpx.URL) -> int:
        return url.port or (443 if url.scheme == "https" else 80)

    def _connection(
        self, url: httpx.URL, sock: socket.socket, watchdog: _Watchdog
    ) -> http.client.HTTPConnection:
        """An HTTP connection on ``sock`` (TLS on top for https, the handshake watched)."""
        port = self._port(url)
        if url.scheme == "https":
            try:
                sock = self._tls.wrap_socket(
                    sock, server_hostname=url.host, do_handshake_on_connect=False
                )
                watchdog.sock = sock
                sock.do_handshake()
            except BaseException:
                sock.close()
                raise
        # The HTTPS class only for its default port, so Host reads as httpx sent it (a CDN's
        # signed URL may cover the Host header); the socket is ours, so its connect never runs.
        connection = (
            http.client.HTTPSConnection(url.host, port, timeout=self._timeout, context=self._tls)
            if url.scheme == "https"
            else http.client.HTTPConnection(url.host, port, timeout=self._timeout)
        )
        connection.sock = sock
        return connection

    def _proxied(self, url: httpx.URL) -> bool:
        if not self._use_proxies:
            return False
        proxies = urllib.request.getproxies_environment()
        if not (proxies.get(url.scheme) or proxies.get("all")):
            return False
        # Left out of typeshed (undocumented, on every platform). ``proxy_bypass``, which it
        # declares, would also read macOS's or Windows' settings: only the environment's
        # NO_PROXY applies, as only its proxies do (``getproxies_environment``).
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        return not bypass(url.host, proxies)


def content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last, total) from a Content-Range header (total None for ``*``); None when it
    is missing or malformed."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None
    return int(match[1]), int(match[2]), None if match[3] == "*" else int(match[3])
