"""The registry client: manifests, blobs and tags over the OCI distribution API.

One client per process. It owns the HTTP connection pool, the auth flow (tokens cached per
registry host and realm/service/scope), retries on 429/5xx honouring Retry-After, plain HTTP
for the hosts an operator named and for loopback registries that do not speak TLS (``plain``),
and — for front ends fed untrusted references — the network guard.

Retries are logged at DEBUG (logger ``layerpeek.core.registry.client``): a user sees the error
a command ends with, not each attempt before it. A name that does not resolve is final at once.

A registry cannot hold a call for long nor take what other registries need: every request has
a total deadline (``Settings.deadline``: a small document from the first byte asked to the
last byte read, the token, redirects and retries included; the answer that opens a layer
range until its headers), layer streams a minimum rate (``core.rate``), and each registry host
at most ``Settings.host_connections`` requests open at once (``HostSlots``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import anyio
import httpx
import stamina
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from layerpeek.core.errors import (
    HTTPX_ERRORS,
    JSON_ERRORS,
    DigestMismatch,
    LayerpeekError,
    ManifestError,
    RangeNotSupported,
    RateLimited,
    RegistryTooSlow,
    RegistryUnreachable,
    error_from_response,
    library_error,
)
from layerpeek.core.image.manifest import MANIFEST_ACCEPT
from layerpeek.core.registry.auth import (
    TOKEN_PENDING,
    TOKEN_REQUEST,
    BoundedBody,
    CredentialResolver,
    RegistryAuth,
    TokenCache,
    registry_host,
    unreachable_error,
)
from layerpeek.core.registry.bulk import BulkReader
from layerpeek.core.registry.credentials import load_credentials
from layerpeek.core.registry.guard import NetworkGuard, make_transport
from layerpeek.core.registry.plain import (
    NoTLS,
    Schemes,
    caused_by_tls,
    no_tls_error,
    speaks_no_tls,
)
from layerpeek.core.registry.reference import Reference, is_digest
from layerpeek.core.settings import Settings
from layerpeek.core.version import VERSION

_log = logging.getLogger(__name__)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution spec lets registries stop at 4 MiB
MAX_CONFIG_BYTES = 32 * 1024 * 1024
MAX_REASON_BYTES = 64 * 1024
"""What is read of a redirect's or an error's body: the registry's reason fits many times."""
MAX_TAG_PAGES = 1000
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_IDLE_HOSTS_KEPT = 256
"""Idle hosts' slots are forgotten past this many hosts (references come from anyone)."""


def _user_agent() -> str:
    return f"layerpeek/{VERSION}"


@dataclass(frozen=True)
class RawManifest:
    """A manifest or index exactly as received, with the digest of those bytes."""

    body: bytes
    media_type: str
    digest: str


class _Transient(Exception):
    """A response worth retrying; carries the wait the server asked for, if any."""

    def __init__(self, response: httpx.Response, wait: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.wait = wait


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta form; HTTP dates are rare from registries)."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _unresolvable(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a name that does not resolve: the resolver's answer is
    final, and only its "try again" (EAI_AGAIN, a resolver out of reach) is worth a retry."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return seen.errno != socket.EAI_AGAIN
        seen = seen.__cause__ or seen.__context__
    return False


def _log_retry(details: RetryDetails) -> None:
    """stamina hook: one DEBUG record per scheduled retry, for whoever turns logging on."""
    _log.debug(
        "retry %d in %.2f s after %r", details.retry_num, details.wait_for, details.caused_by
    )


def _log_retries_at_debug() -> None:
    """stamina's default hook logs each scheduled retry at WARNING, which Python's last-resort
    handler prints to stderr when nobody configured logging: three lines before every network
    error. Retries are logged at DEBUG instead; nothing else about logging changes, so real
    warnings still show."""
    set_on_retry_hooks([_log_retry])


def check_digest(digest: str, what: str) -> str:
    """``digest`` if layerpeek can verify it: sha256 or sha512 in lowercase hex of the right
    length. Anything else (md5:…, a control character) is refused before it is used, since
    bytes asked for by it could never be checked."""
    if not is_digest(digest):
        raise ManifestError(
            f"refused digest {digest!r} for {what}: only sha256 and sha512 digests are verified"
        )
    return digest


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The OCI digest string of ``data``; only for the algorithms ``check_digest`` accepts."""
    if algorithm not in ("sha256", "sha512"):
        raise ManifestError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class DigestCheck:
    """A digest computed while bytes stream past, checked once they have all been seen.

    Only what ``check_digest`` accepts can be checked: anything else is refused here rather
    than "verified" with something weaker.
    """

    def __init__(self, expected: str, what: str) -> None:
        algorithm = check_digest(expected, what).partition(":")[0]
        self.expected = expected
        self.what = what
        self._hash = hashlib.new(algorithm)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def verify(self) -> None:
        """Raise ``DigestMismatch`` unless the bytes seen hash to the expected digest."""
        actual = f"{self._hash.name}:{self._hash.hexdigest()}"
        if actual != self.expected:
            raise DigestMismatch(
                f"{self.what}: received bytes hash to {actual}, expected {self.expected}"
            )


def verify_digest(data: bytes, expected: str, what: str) -> None:
    """Refuse bytes that do not hash to the digest they were fetched by."""
    check = DigestCheck(expected, what)
    check.update(data)
    check.verify()


class HostShare:
    """One registry host's share: requests open at once, and worker threads for bulk reads."""

    def __init__(self, limit: int) -> None:
        self.requests = anyio.Semaphore(limit)
        self.threads = anyio.CapacityLimiter(limit)
        self.limit = limit

    @property
    def idle(self) -> bool:
        return self.requests.value == self.limit and not self.threads.borrowed_tokens


class HostSlots:
    """At most ``limit`` requests open at once to each registry host; more wait their turn.

    A slot is held from the request until its response is closed (a layer stream holds it
    while it is read), so a registry that answers slowly fills its own slots and no more:
    the connection pool and the worker threads stay free for every other registry.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._hosts: dict[str, HostShare] = {}

    def of(self, host: str) -> HostShare:
        found = self._hosts.get(host)
        if found is None:
            if len(self._hosts) >= _IDLE_HOSTS_KEPT:
                self._hosts = {h: v for h, v in self._hosts.items() if not v.idle}
            found = self._hosts[host] = HostShare(self.limit)
        return found


class _Released(httpx.AsyncByteStream):
    """A response body that gives its host slot back when it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._release()


def _once(release: Callable[[], None]) -> Callable[[], None]:
    """``release`` that runs at most once, however often it is called."""
    done = False

    def release_once() -> None:
        nonlocal done
        if not done:
            done = True
            release()

    return release_once


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """Public CAs plus the operator's bundle (a private registry's CA), not instead of them.

    One context for the httpx client and the bulk reader alike: loading the public CAs takes
    ~17 ms, once per process start, and both sides then trust the same certificates (httpx's
    default choice: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, else certifi's bundle).
    """
    context = httpx.create_ssl_context()
    if settings.ca_bundle is None:
        return context
    try:
        context.load_verify_locations(cafile=str(settings.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise LayerpeekError(f"cannot load CA bundle {settings.ca_bundle}: {exc}") from None
    return context


class RegistryClient:
    """Talks to any OCI / Docker registry; an async context manager owning its connections."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        guarded: bool = False,
        credentials: CredentialResolver = load_credentials,
    ) -> None:
        self.settings = settings or Settings()
        _log_retries_at_debug()
        self.schemes = Schemes(self.settings.plain_http)
        """The scheme each registry host is asked over (``plain``)."""
        guard = NetworkGuard(self.settings.allow_private) if guarded else None
        tls = _ssl_context(self.settings)
        # Unguarded (the CLI), httpx keeps honouring HTTPS_PROXY / NO_PROXY as Docker does;
        # guarded, every connection goes through the guard's own transport and no proxy,
        # since a proxy would connect on our behalf where the guard cannot see.
        connection: dict[str, Any] = (
            {"transport": make_transport(guard, tls)} if guard else {"verify": tls}
        )
        self.bulk = BulkReader(guard, tls, self.settings.timeout, use_proxies=guard is None)
        """Reads large blob ranges on the routes httpx answers found (see ``bulk``)."""
        self.slots = HostSlots(self.settings.host_connections)
        """Requests and bulk reads open at once, per registry host."""
        self._http = httpx.AsyncClient(
            **connection,
            auth=RegistryAuth(credentials, TokenCache()),
            follow_redirects=True,
            timeout=httpx.Timeout(self.settings.timeout, connect=min(10.0, self.settings.timeout)),
            headers={"User-Agent": _user_agent()},
            event_hooks={"response": [_bound_reason]},
        )

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def host(self, ref: Reference) -> HostShare:
        """The share of the registry ``ref`` is on (a bulk window takes one of its slots)."""
        return self.slots.of(registry_host(httpx.URL(self.url(ref, ""))))

    def url(self, ref: Reference, path: str) -> str:
        """The API URL for ``path`` under the reference's repository."""
        host = ref.api_host
        return f"{self.schemes.scheme(host)}://{host}/v2/{ref.repository}/{path}"

    def _blob_url(self, ref: Reference, digest: str) -> str:
        """The URL of a blob by a digest layerpeek can verify (see ``check_digest``)."""
        return self.url(ref, f"blobs/{check_digest(digest, f'a blob of {ref.name}')}")

    # -- sending, with retries -------------------------------------------------------------

    def _backoff(self, exc: Exception) -> bool | float:
        """stamina hook: retry transient statuses (waiting what the server asked) and drops;
        not a failed handshake (a certificate will not become valid by retrying) nor a name
        that does not resolve."""
        if isinstance(exc, _Transient):
            return True if exc.wait is None else exc.wait
        if not isinstance(exc, httpx.TransportError) or isinstance(exc, httpx.UnsupportedProtocol):
            return False
        return not (caused_by_tls(exc) or _unresolvable(exc))

    async def _send_once(self, request: httpx.Request, what: str) -> httpx.Response:
        response = await self._http.send(request, stream=True)
        if response.status_code not in _RETRY_STATUSES:
            return response
        await response.aread()
        await response.aclose()
        wait = _retry_after(response)
        left = anyio.current_effective_deadline() - anyio.current_time()
        if wait is not None and (wait > self.settings.max_retry_wait or wait >= left):
            raise rate_limited(response, what)
        raise _Transient(response, wait)

    def deadline(self) -> float:
        """The moment (anyio's clock) by which an operation starting now must be done."""
        return anyio.current_time() + self.settings.deadline

    async def send(
        self,
        method: str,
        url: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        *,
        until: float | None = None,
    ) -> httpx.Response:
        """Send with retries; return a *streamed* 2xx/3xx response or raise a typed error.

        The caller must read or close the response (``async with`` or ``aclose``); until then
        it holds one of the host's slots. Everything up to the response's headers (a free
        slot, the token, redirects, retries) must be done by ``until`` (default: one
        ``deadline`` from now), else ``RegistryTooSlow``.
        """
        try:
            request = self._http.build_request(method, url, headers=headers)
        except HTTPX_ERRORS as exc:
            raise library_error(exc, what) from None
        host = self.slots.of(registry_host(request.url))
        release: Callable[[], None] | None = None
        started = anyio.current_time()
        until = self.deadline() if until is None else until
        with anyio.CancelScope(deadline=until) as scope:
            await host.requests.acquire()
            release = _once(host.requests.release)
            try:
                response = await self._reach(request, what)
                stream = response.stream
                assert isinstance(stream, httpx.AsyncByteStream), (
                    "httpx's AsyncClient asserts it too"
                )
                response.stream = _Released(stream, release)
                if response.status_code >= 400:
                    try:
                        await response.aread()
                    except httpx.DecodingError as exc:
                        raise library_error(exc, what) from None
                    finally:
                        await response.aclose()
                    raise error_from_response(response, what)
            except BaseException:
                release()
                raise
        if scope.cancelled_caught:
            waited = until - started
            raise self._too_slow(request, what, waited, waited_for_slot=release is None)
        return response

    def _too_slow(
        self, request: httpx.Request, what: str, waited: float, *, waited_for_slot: bool
    ) -> RegistryTooSlow:
        """The deadline's one line: whom we were waiting for when it passed."""
        host = registry_host(request.url)
        seconds = f"{round(waited, 1):g} s (LAYERPEEK_DEADLINE)"
        if waited_for_slot:
            return RegistryTooSlow(
                f"registry {host} is busy: all {self.slots.limit} requests layerpeek has open "
                f"to it at once (LAYERPEEK_HOST_CONNECTIONS) were still running when {what} had "
                f"waited {seconds}"
            )
        token_server = request.extensions.get(TOKEN_PENDING)
        if token_server is not None:
            return RegistryTooSlow(
                f"token server {token_server} (for registry {host}) did not send a token "
                f"for {what} within {seconds}"
            )
        return RegistryTooSlow(f"registry {host} did not answer for {what} within {seconds}")

    async def _reach(self, request: httpx.Request, what: str) -> httpx.Response:
        """``request`` answered; over plain HTTP when it is to a loopback registry whose
        answer to HTTPS was not TLS (Docker's rule), which the client then remembers."""
        try:
            return await self._attempts(request, what)
        except NoTLS:
            if not self.schemes.falls_back(request.url):
                raise
        plain = self.schemes.plain(request.url)
        again = self._http.build_request(request.method, plain, headers=request.headers)
        return await self._attempts(again, what)

    async def _attempts(self, request: httpx.Request, what: str) -> httpx.Response:
        """``request`` sent until it is not a transient failure, as the settings allow."""
        try:
            async for attempt in stamina.retry_context(
                on=self._backoff,
                attempts=self.settings.retries,
                timeout=None,
                wait_initial=0.2,
                wait_max=10.0,
                wait_jitter=0.2,
            ):
                with attempt:
                    response = await self._send_once(request, what)
        except _Transient as exc:
            if exc.response.status_code == 429:
                raise rate_limited(exc.response, what) from None
            raise error_from_response(exc.response, what) from None
        except httpx.TransportError as exc:
            raise _unreachable(exc, request) from None
        except HTTPX_ERRORS as exc:
            raise library_error(exc, what) from None
        return response

    async def _read_capped(
        self, response: httpx.Response, cap: int, what: str, until: float
    ) -> bytes:
        """Read a small body by ``until``, refusing one larger than ``cap`` before it fills
        memory."""
        declared = int(response.headers.get("Content-Length", "0") or 0)
        if declared > cap:
            await response.aclose()
            raise ManifestError(f"{what} is {declared} bytes, more than the {cap} allowed")
        chunks: list[bytes] = []
        total = 0
        with anyio.CancelScope(deadline=until) as scope:
            try:
                async for chunk in response.aiter_raw():
                    total += len(chunk)
                    if total > cap:
                        raise ManifestError(f"{what} is larger than the {cap} bytes allowed")
                    chunks.append(chunk)
            except httpx.TransportError as exc:
                # A drop mid-body happens after send() and its retries: say so, one line.
                raise RegistryUnreachable(f"connection lost while reading {what}: {exc}") from None
            finally:
                await response.aclose()
        if scope.cancelled_caught:
            raise RegistryTooSlow(
                f"registry {registry_host(response.url)} did not send all of {what} within "
                f"{self.settings.deadline:g} s (LAYERPEEK_DEADLINE): {total:,} bytes came"
            )
        return b"".join(chunks)

    # -- the API ---------------------------------------------------------------------------

    async def check_manifest(self, ref: Reference, target: str | None = None) -> str | None:
        """Ask the registry, with the caller's credentials and through the guard, for the
        manifest ``target`` names (a HEAD: no body, and no pull on Docker Hub's rate limit).

        Every answer starts here, before any cache is consulted: the registry is reachable,
        the caller may read the repository, the manifest exists. Returns the digest the
        registry says the target has now (the target itself when it is a digest), or None
        when a registry answers a tag without ``Docker-Content-Digest``; raises the typed
        error of a refusal (401, 404, the guard, an unreachable host).
        """
        target = target or ref.target
        what = _manifest_what(ref, target)
        response = await self.send(
            "HEAD", self.url(ref, f"manifests/{target}"), what, {"Accept": MANIFEST_ACCEPT}
        )
        await response.aclose()
        if _is_digest(target):
            return target
        claimed = response.headers.get("Docker-Content-Digest", "")
        return claimed if _is_digest(claimed) else None

    async def get_manifest(self, ref: Reference, target: str | None = None) -> RawManifest:
        """A manifest or index by tag or digest; by digest, the bytes are verified."""
        target = target or ref.target
        if target != ref.target:  # a digest from an index, not one the reference spelled
            check_digest(target, f"a manifest of {ref.name}")
        what = _manifest_what(ref, target)
        until = self.deadline()
        response = await self.send(
            "GET",
            self.url(ref, f"manifests/{target}"),
            what,
            {"Accept": MANIFEST_ACCEPT},
            until=until,
        )
        body = await self._read_capped(response, MAX_MANIFEST_BYTES, what, until)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if _is_digest(target):
            verify_digest(body, target, what)
            return RawManifest(body, media_type, target)
        return RawManifest(body, media_type, self._tag_digest(response, body, what))

    @staticmethod
    def _tag_digest(response: httpx.Response, body: bytes, what: str) -> str:
        """The digest of a manifest fetched by tag: what the registry says, checked."""
        claimed: str = response.headers.get("Docker-Content-Digest", "")
        if claimed.startswith(("sha256:", "sha512:")):
            verify_digest(body, claimed, what)
            return claimed
        return digest_of(body)

    async def get_blob(self, ref: Reference, digest: str, cap: int = MAX_CONFIG_BYTES) -> bytes:
        """A small blob (a config), read whole and verified against its digest."""
        what = f"blob {digest} of {ref.name}"
        until = self.deadline()
        response = await self.send("GET", self._blob_url(ref, digest), what, until=until)
        body = await self._read_capped(response, cap, what, until)
        verify_digest(body, digest, what)
        return body

    async def blob_size(self, ref: Reference, digest: str) -> int:
        """The blob's size from a HEAD request (no body transferred)."""
        what = f"blob {digest} of {ref.name}"
        response = await self.send("HEAD", self._blob_url(ref, digest), what)
        await response.aclose()
        return int(response.headers.get("Content-Length", "0") or 0)

    async def open_blob(
        self, ref: Reference, digest: str, start: int = 0, end: int | None = None
    ) -> httpx.Response:
        """A streamed GET of a blob asking for bytes ``start`` to ``end`` (inclusive; None: to
        the end). The status says what came: 206 the range, 200 the whole blob from byte 0
        (a registry or CDN that ignores Range). The caller reads and closes the response."""
        what = f"blob {digest} of {ref.name}"
        span = f"bytes={start}-{'' if end is None else end}"
        return await self.send("GET", self._blob_url(ref, digest), what, {"Range": span})

    async def fetch_range(self, ref: Reference, digest: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (inclusive) of a blob, with one Range request.

        ``start`` may be negative for a suffix (``bytes=-N``: the last N bytes, e.g. a TOC
        footer), then ``end`` is ignored. A registry must answer 206 to a range; one that sends
        the whole blob instead is refused here rather than read in full.
        """
        what = f"bytes {start}-{end} of blob {digest} of {ref.name}"
        span = f"bytes={start}" if start < 0 else f"bytes={start}-{end}"
        until = self.deadline()
        response = await self.send(
            "GET", self._blob_url(ref, digest), what, {"Range": span}, until=until
        )
        if response.status_code != 206:
            await response.aclose()
            raise RangeNotSupported(f"{what}: the registry ignored the Range request")
        wanted = -start if start < 0 else end - start + 1
        return await self._read_capped(response, wanted, what, until)

    async def list_tags(self, ref: Reference) -> list[str]:
        """Every tag of the repository, following ``Link: <…>; rel="next"`` pages."""
        what = f"tags of {ref.name}"
        url: str | None = self.url(ref, "tags/list?n=1000")
        tags: list[str] = []
        seen: set[str] = set()
        while url and url not in seen and len(seen) < MAX_TAG_PAGES:
            seen.add(url)
            until = self.deadline()
            response = await self.send("GET", url, what, until=until)
            page = await self._read_capped(response, MAX_MANIFEST_BYTES, what, until)
            tags.extend(_tags_of(page, what))
            url = _next_link(response)
        # A Link that loops back to a page under another URL repeats its tags: keep each once.
        return list(dict.fromkeys(tags))


def _unreachable(exc: httpx.TransportError, request: httpx.Request) -> RegistryUnreachable:
    """The one line for a request that got no answer: for the registry itself answering
    HTTPS with something that is not TLS, which setting makes it plain HTTP."""
    failed = exc.request
    registry = failed.url == request.url and not failed.extensions.get(TOKEN_REQUEST)
    return no_tls_error(exc) if registry and speaks_no_tls(exc) else unreachable_error(exc)


async def _bound_reason(response: httpx.Response) -> None:
    """httpx response hook: a redirect's or an error's body is read (by httpx, to follow a
    redirect; by us, for the registry's reason) only up to ``MAX_REASON_BYTES``, and not at
    all when it comes compressed, since a small compressed body may inflate to gigabytes."""
    if response.status_code < 300:
        return
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    cap = MAX_REASON_BYTES if encoding in ("", "identity") else 0
    response.stream = BoundedBody(
        response.stream, cap=cap, too_large=None, status=response.status_code
    )


def _is_digest(target: str) -> bool:
    """A manifest target that names content (``sha256:…``) rather than a tag."""
    return target.startswith(("sha256:", "sha512:"))


def _manifest_what(ref: Reference, target: str) -> str:
    return f"manifest {ref.name}@{target}" if ":" in target else f"manifest {ref.name}:{target}"


def _tags_of(page: bytes, what: str) -> list[str]:
    try:
        data = json.loads(page)
    except JSON_ERRORS:
        raise ManifestError(f"{what}: the registry sent a page that is not JSON") from None
    tags = data.get("tags") if isinstance(data, dict) else None
    return [str(t) for t in tags or []]


def _next_link(response: httpx.Response) -> str | None:
    """The next page's absolute URL; registries send it relative (distribution does)."""
    link = response.links.get("next", {}).get("url")
    # Joined as text: a link httpx cannot parse is reported by send(), like any odd URL.
    return urljoin(str(response.url), link) if link else None


def _rate_limit_note(response: httpx.Response) -> str:
    """Docker Hub says in ``ratelimit-*`` headers (``76;w=21600``) how many pulls are left."""
    remaining = response.headers.get("ratelimit-remaining", "").split(";")[0]
    limit = response.headers.get("ratelimit-limit", "").split(";")[0]
    window = response.headers.get("ratelimit-remaining", "").partition("w=")[2]
    note = f"; {remaining} of {limit or '?'} pulls left" if remaining else ""
    note += f" per {int(window) // 3600} h window" if window.isdigit() and remaining else ""
    if response.url.host.endswith("docker.io"):
        note += "; `docker login` raises Docker Hub's limit"
    return note


def rate_limited(response: httpx.Response, what: str) -> RateLimited:
    """The 429 error: how long the registry asked us to wait and what is left of the quota."""
    wait = _retry_after(response)
    after = f"retry after {wait:.0f} s" if wait is not None else "retry later"
    return RateLimited(
        f"rate limited while fetching {what}: {after}{_rate_limit_note(response)}",
        retry_after=wait,
    )
