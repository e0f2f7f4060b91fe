"""Registry authentication as an ``httpx.Auth`` flow: challenges, Bearer tokens, Basic.

The flow is a generator that yields requests and receives responses (httpx's own
``_auth.py`` shape), so every step is testable by sending constructed responses into it.
Token requests are yielded too: they travel through the caller's client, its transport and
so its network guard, like every other request.

Where credentials go (Docker's rule): to the registry host they were resolved for, and to the
token realm that this registry's own 401 names. A 401 that arrives after a redirect left the
registry's origin is returned untouched: it came from someone else.

Where tokens go: only to the registry host they were fetched for. The token cache is keyed by
that host as well as by realm, service and scope, so a registry whose challenge names another
registry's realm, service and scope gets a token of its own, fetched with its own credentials
(or none), never the other registry's.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from urllib.request import parse_http_list

import anyio.to_thread
import httpx

from layerpeek.core.errors import (
    JSON_ERRORS,
    RegistryError,
    RegistryUnreachable,
    ServerError,
    Unauthorized,
)
from layerpeek.core.registry.credentials import Credentials, describe_lookup

# Marks the requests this flow sends to a token realm, so drivers read their bodies and a
# transport error on one can be reported as the token server's (see unreachable_error).
TOKEN_REQUEST = "layerpeek.token_request"
# Set on a registry request while its token is being fetched (the realm's URL), so a deadline
# that passes meanwhile names the token server that kept us waiting.
TOKEN_PENDING = "layerpeek.token_pending"
# The ``TokenKey`` a token request fetches for, so concurrent requests wait for it instead of
# fetching the same token again (``RegistryAuth.async_auth_flow``).
TOKEN_KEY = "layerpeek.token_key"
# The token spec: "If omitted, the client should assume the token is valid for 60 seconds".
DEFAULT_TOKEN_LIFETIME = 60.0
# Refresh a little early so a token does not expire between the cache lookup and the request.
TOKEN_SKEW = 5.0
CLIENT_ID = "layerpeek"
# A token answer is a few KiB of JSON (Docker Hub's: ~2 KiB); one past 1 MiB is refused before
# it fills memory. The body of a 401 the flow answers (httpx reads it before the retry) is held
# to the same bound, and dropped.
MAX_TOKEN_BYTES = 1024 * 1024
# /v2/NAME/{manifests,blobs,tags,referrers}/...; greedy, since NAME itself contains slashes.
_REPOSITORY_PATH = re.compile(r"/v2/(?P<name>.+)/(?:manifests|blobs|tags|referrers)/")

CredentialResolver = Callable[[str], Credentials | None]


class TokenKey(NamedTuple):
    """What a cached token is for: the registry it is sent to, and the realm, service and
    scope it was fetched with. Two registries never share a token, whatever they claim."""

    host: str
    realm: str
    service: str
    scope: str


@dataclass(frozen=True)
class Challenge:
    """One WWW-Authenticate challenge: the scheme (lower-cased) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a WWW-Authenticate value (several may share one header).

    ``parse_http_list`` splits on commas outside quoted strings and drops the backslash of
    ``\\"`` escapes; an element whose first word has no ``=`` starts a new challenge.
    """
    challenges: list[Challenge] = []
    for element in parse_http_list(header):
        scheme, _, rest = element.partition(" ")
        if "=" not in scheme and not rest.lstrip().startswith("="):
            challenges.append(Challenge(scheme.lower()))
            element = rest
        if challenges and "=" in element:
            key, value = _param(element)
            challenges[-1].params[key] = value
    return challenges


def _param(element: str) -> tuple[str, str]:
    """``key=value`` or ``key="value"`` with the key lower-cased (RFC 9110: case-insensitive)."""
    key, _, value = element.partition("=")
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return key.strip().lower(), value


def response_challenges(response: httpx.Response) -> list[Challenge]:
    """Challenges from every WWW-Authenticate header of ``response``."""
    values = response.headers.get_list("www-authenticate")
    return [c for value in values for c in parse_challenges(value)]


def scope_for_path(path: str) -> str:
    """The pull scope a registry will ask for on ``path``; "" where none applies (``/v2/``)."""
    match = _REPOSITORY_PATH.match(path)
    return f"repository:{match['name']}:pull" if match else ""


class TokenCache:
    """Bearer tokens by (registry host, realm, service, scope), each kept until shortly before
    it expires.

    One lock around a dict: enough for one event loop plus the worker threads a sync client
    might use. Requests that miss together on one event loop fetch one token
    (``RegistryAuth.async_auth_flow``); on a sync client each fetches, and the later wins.
    """

    def __init__(self, clock: Callable[[], float] = time.time, skew: float = TOKEN_SKEW) -> None:
        self._clock = clock
        self._skew = skew
        self._tokens: dict[TokenKey, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: TokenKey) -> str | None:
        """The token for ``key`` if it has not (nearly) expired."""
        with self._lock:
            token, expires = self._tokens.get(key, ("", 0.0))
        return token if token and expires > self._clock() else None

    def put(
        self, key: TokenKey, token: str, expires_in: float | None, issued_at: float | None = None
    ) -> None:
        """Keep ``token`` for ``expires_in`` seconds from when it was issued.

        ``issued_at`` only ever shortens the life (a token server clock ahead of ours must
        not make us keep a token past its real expiry).
        """
        now = self._clock()
        start = min(now, issued_at) if issued_at is not None else now
        life = expires_in if expires_in and expires_in > 0 else DEFAULT_TOKEN_LIFETIME
        with self._lock:
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            self._tokens[key] = (token, start + life - self._skew)


@dataclass(frozen=True)
class _Lookup:
    """A host's credentials, or the phrase saying where none were found."""

    credentials: Credentials | None
    missing: str


class RegistryAuth(httpx.Auth):
    """Bearer and Basic registry auth with a shared token cache.

    ``resolve`` maps a registry host ("ghcr.io", "127.0.0.1:5000") to its credentials; it may
    run a credential helper, so the async flow calls it in a worker thread, once per host.
    ``describe_missing`` phrases where credentials were looked for when there are none.
    """

    def __init__(
        self,
        resolve: CredentialResolver,
        cache: TokenCache,
        describe_missing: Callable[[str], str] = describe_lookup,
    ) -> None:
        self._resolve = resolve
        self._describe_missing = describe_missing
        self._cache = cache
        self._lookups: dict[str, _Lookup] = {}
        self._lookup_lock = threading.Lock()
        # host -> (realm, service) of its last Bearer challenge, to send tokens proactively.
        self._realms: dict[str, tuple[str, str]] = {}
        # Tokens being fetched by an async flow, set when the fetch ends (well or not).
        self._fetching: dict[TokenKey, anyio.Event] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send (with a cached token if any); answer one 401 challenge; retry once."""
        host = registry_host(request.url)
        sent_token = self._attach_cached_token(request, host)
        response = yield request
        if response.status_code != 401 or not _same_origin(response.url, request.url):
            return
        challenges = response_challenges(response)
        bearer = _first(challenges, "bearer")
        if bearer is not None:
            yield from self._bearer_retry(request, host, bearer, sent_token)
        elif _first(challenges, "basic") is not None:
            yield from self._basic_retry(request, host)
        elif challenges:
            raise Unauthorized(
                f"registry {host} asks for {challenges[0].scheme} authentication, "
                "which layerpeek does not speak (only Bearer and Basic)",
                status=401,
            )

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Drive ``auth_flow``, reading token responses (their JSON is needed, not streamed)."""
        flow = self.auth_flow(request)
        request = next(flow)
        while True:
            response = yield request
            answered = request
            if answered.extensions.get(TOKEN_REQUEST):
                _bound_token(response, answered)
                response.read()
            try:
                request = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Drive ``auth_flow``; look credentials up in a worker thread before the flow needs them.

        A credential helper is a subprocess that may wait on a keychain prompt: it must not
        block the event loop, so the lookup happens here, on the first 401 from the registry.

        Requests answered 401 at the same time for one token fetch it once: a flow that
        sends a token request marks its key as being fetched until the answer is handled
        (or the flow ends, cancelled or failed), and a flow whose 401 asks for a key being
        fetched waits for that before the flow goes on, which then finds the token cached
        (or, when the fetch failed, fetches it itself).
        """
        original = request
        original.extensions.pop(TOKEN_PENDING, None)
        flow = self.auth_flow(request)
        fetching: TokenKey | None = None
        try:
            request = next(flow)
            while True:
                if request.extensions.get(TOKEN_REQUEST):
                    original.extensions[TOKEN_PENDING] = str(request.url.copy_with(query=None))
                    fetching = self._start_fetch(request.extensions[TOKEN_KEY])
                response = yield request
                answered = request
                if answered.extensions.get(TOKEN_REQUEST):
                    _bound_token(response, answered)
                    await response.aread()
                    original.extensions.pop(TOKEN_PENDING, None)
                elif response.status_code == 401 and _same_origin(response.url, answered.url):
                    await anyio.to_thread.run_sync(self._lookup, registry_host(answered.url))
                    await self._await_fetch(original, answered, response)
                try:
                    request = flow.send(response)
                except StopIteration:
                    return
                finally:
                    if answered.extensions.get(TOKEN_REQUEST):
                        self._end_fetch(fetching)
                        fetching = None
        finally:
            self._end_fetch(fetching)

    def _start_fetch(self, key: TokenKey) -> TokenKey | None:
        """Mark ``key`` as being fetched by the calling flow; None if another flow already is
        (then the calling flow does not end that mark)."""
        if key in self._fetching:
            return None
        self._fetching[key] = anyio.Event()
        return key

    def _end_fetch(self, key: TokenKey | None) -> None:
        """The fetch of ``key`` (if the calling flow marked one) is over: wake its waiters."""
        if key is not None:
            self._fetching.pop(key).set()

    async def _await_fetch(
        self, original: httpx.Request, request: httpx.Request, response: httpx.Response
    ) -> None:
        """Wait while another flow fetches the token this 401 asks for."""
        bearer = _first(response_challenges(response), "bearer")
        if bearer is None:
            return
        try:
            key = self._token_key(request, registry_host(request.url), bearer)
        except Unauthorized:
            return  # the flow says why, with the challenge in hand
        while (fetch := self._fetching.get(key)) is not None:
            original.extensions[TOKEN_PENDING] = key.realm
            await fetch.wait()
        original.extensions.pop(TOKEN_PENDING, None)

    def _lookup(self, host: str) -> _Lookup:
        """Resolve ``host``'s credentials once; a failed lookup is retried next time.

        The lock only serialises resolutions (in worker threads); a host already resolved is
        read without it, so the event loop never waits behind a slow credential helper.
        """
        known = self._lookups.get(host)
        if known is not None:
            return known
        with self._lookup_lock:
            if host not in self._lookups:
                credentials = self._resolve(host)
                missing = "" if credentials else self._describe_missing(host)
                self._lookups[host] = _Lookup(credentials, missing)
            return self._lookups[host]

    def _attach_cached_token(self, request: httpx.Request, host: str) -> str:
        """Send a still-valid token for this host and path's scope up front, saving a 401."""
        realm, service = self._realms.get(host, ("", ""))
        token = self._cache.get(TokenKey(host, realm, service, scope_for_path(request.url.path)))
        if realm and token:
            request.headers["Authorization"] = f"Bearer {token}"
            return token
        return ""

    def _bearer_retry(
        self, request: httpx.Request, host: str, challenge: Challenge, sent_token: str
    ) -> Generator[httpx.Request, httpx.Response, None]:
        key = self._token_key(request, host, challenge)
        scope = key.scope
        self._realms[host] = (key.realm, key.service)
        token = self._cache.get(key)
        if not token or token == sent_token:
            token = yield from self._fetch_token(request, host, key)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and _same_origin(response.url, request.url):
            raise self._refused(host, scope)

    @staticmethod
    def _token_key(request: httpx.Request, host: str, challenge: Challenge) -> TokenKey:
        """The token a Bearer challenge to ``request`` asks for."""
        realm, service = _realm_of(challenge, host), challenge.params.get("service", "")
        scope = challenge.params.get("scope") or scope_for_path(request.url.path)
        return TokenKey(host, realm, service, scope)

    def _basic_retry(
        self, request: httpx.Request, host: str
    ) -> Generator[httpx.Request, httpx.Response, None]:
        lookup = self._lookup(host)
        if lookup.credentials is None or lookup.credentials.identity_token:
            raise self._refused(host, "")
        request.headers["Authorization"] = _basic_header(lookup.credentials)
        response = yield request
        if response.status_code == 401 and _same_origin(response.url, request.url):
            raise self._refused(host, "")

    def _fetch_token(
        self, request: httpx.Request, host: str, key: TokenKey
    ) -> Generator[httpx.Request, httpx.Response, str]:
        """Ask the realm for a token (through the same client), cache it, return it."""
        credentials = self._lookup(host).credentials
        response = yield _token_request(request, key, credentials)
        if response.status_code in (401, 403):
            raise self._refused(host, key.scope, token_server=key.realm)
        token, expires_in, issued_at = _token_from(response, key.realm)
        self._cache.put(key, token, expires_in, issued_at)
        return token

    def _refused(self, host: str, scope: str, token_server: str = "") -> Unauthorized:
        """The one-line 401: who refused, whose credentials (from where) or none, and why."""
        lookup = self._lookup(host)
        who = f"registry {host}"
        if token_server:
            who = f"token server {token_server} (for registry {host})"
        on_scope = f" for {scope}" if scope else ""
        creds = lookup.credentials
        if creds is None:
            return Unauthorized(
                f"{who} refused anonymous access{on_scope} ({lookup.missing}); "
                f"the repository may not exist, or run docker login {host}",
                status=401,
            )
        user = f"user {creds.username}" if creds.username else "an identity token"
        return Unauthorized(
            f"{who} refused the credentials for {user}{on_scope} (from {creds.source})",
            status=401,
        )


def registry_host(url: httpx.URL) -> str:
    """host[:port] as credentials are keyed: the port only when it is not the default."""
    return url.netloc.decode("ascii")


def unreachable_error(exc: httpx.TransportError) -> RegistryUnreachable:
    """Name what could not be reached: a token server (marked by this flow) or a registry."""
    return RegistryUnreachable(f"{_who(exc.request)} unreachable: {exc or type(exc).__name__}")


def _who(request: httpx.Request) -> str:
    """Whom ``request`` went to: a token server (marked by this flow) or a registry."""
    if request.extensions.get(TOKEN_REQUEST):
        return f"token server {request.url.copy_with(query=None)}"
    return f"registry {registry_host(request.url)}"


class BoundedBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body read through a cap of ``cap`` bytes. Past it, the body either raises
    ``too_large`` (a token, which is useless cut) or, with ``too_large`` None, simply ends
    there (a reason, whose first bytes say enough)."""

    def __init__(
        self,
        inner: httpx.SyncByteStream | httpx.AsyncByteStream,
        *,
        cap: int,
        too_large: str | None,
        status: int,
    ) -> None:
        self._inner = inner
        self._cap = cap
        self._too_large = too_large
        self._status = status
        self._seen = 0

    def _within(self, chunk: bytes) -> bytes:
        """``chunk`` as far as the cap allows (raising past it when cut bodies are useless)."""
        room = self._cap - self._seen
        self._seen += len(chunk)
        if len(chunk) > room and self._too_large is not None:
            raise RegistryError(self._too_large, status=self._status)
        return chunk[: max(room, 0)]

    @property
    def _cut(self) -> bool:
        """The cap is reached and the body ends here: nothing more is read."""
        return self._too_large is None and self._seen >= self._cap

    def __iter__(self) -> Iterator[bytes]:
        assert isinstance(self._inner, httpx.SyncByteStream)
        for chunk in self._inner:
            kept = self._within(chunk)
            if kept:
                yield kept
            if self._cut:
                return

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert isinstance(self._inner, httpx.AsyncByteStream)
        async for chunk in self._inner:
            kept = self._within(chunk)
            if kept:
                yield kept
            if self._cut:
                return

    def close(self) -> None:
        assert isinstance(self._inner, httpx.SyncByteStream)
        self._inner.close()

    async def aclose(self) -> None:
        assert isinstance(self._inner, httpx.AsyncByteStream)
        await self._inner.aclose()


def _bound_token(response: httpx.Response, request: httpx.Request) -> None:
    """Make httpx read at most ``MAX_TOKEN_BYTES`` of a token answer (see ``BoundedBody``);
    the bodies of the registry's own 401s are bounded like every other reason
    (``client._bound_reason``).

    A token must come unencoded, as the token request asked: a 1 MiB gzip or zstd body
    could inflate to gigabytes in httpx's decoder, past any cap on the bytes received.
    """
    who, status = _who(request), response.status_code
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise RegistryError(
            f"{who} sent an answer with Content-Encoding {encoding!r}, not the plain one asked for",
            status=status,
        )
    too_large = f"{who} sent an answer larger than {MAX_TOKEN_BYTES // 1024} KiB (HTTP {status})"
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > MAX_TOKEN_BYTES:
        raise RegistryError(too_large, status=status)
    response.stream = BoundedBody(
        response.stream, cap=MAX_TOKEN_BYTES, too_large=too_large, status=status
    )


def _first(challenges: list[Challenge], scheme: str) -> Challenge | None:
    return next((c for c in challenges if c.scheme == scheme), None)


def _same_origin(url: httpx.URL, other: httpx.URL) -> bool:
    """httpx's own origin rule (scheme, host, port), which decides when it strips auth."""
    return (url.scheme, url.host, url.port) == (other.scheme, other.host, other.port)


def _realm_of(challenge: Challenge, host: str) -> str:
    realm = challenge.params.get("realm", "")
    try:
        usable = httpx.URL(realm).scheme in ("http", "https")
    except httpx.InvalidURL:
        usable = False
    if not usable:
        raise Unauthorized(
            f"registry {host} sent a Bearer challenge without a usable realm ({realm!r})",
            status=401,
        )
    return realm


def _token_request(
    request: httpx.Request, key: TokenKey, credentials: Credentials | None
) -> httpx.Request:
    """Docker's token request: GET with Basic credentials, or an OAuth2 refresh-token POST.

    The original request's timeouts and User-Agent carry over; requests yielded from a flow
    skip the client's defaults, and without a timeout a dead realm would hang forever.
    """
    _, realm, service, scope = key
    extensions: dict[str, Any] = {TOKEN_REQUEST: True, TOKEN_KEY: key}
    if "timeout" in request.extensions:
        extensions["timeout"] = request.extensions["timeout"]
    headers = {k: v for k, v in request.headers.items() if k.lower() == "user-agent"}
    headers["Accept-Encoding"] = "identity"  # see _bound_token
    if credentials is not None and credentials.identity_token:
        form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token}
        form |= {"service": service, "scope": scope, "client_id": CLIENT_ID}
        data = {k: v for k, v in form.items() if v}
        return httpx.Request("POST", realm, data=data, headers=headers, extensions=extensions)
    # The spec's GET repeats ``scope`` per scope; a challenge lists them space-separated.
    # copy_add_param keeps any query the realm already has (params= would replace it).
    url = httpx.URL(realm)
    for name, value in [("service", service), *(("scope", s) for s in scope.split())]:
        url = url.copy_add_param(name, value) if value else url
    if credentials is not None:
        headers["Authorization"] = _basic_header(credentials)
    return httpx.Request("GET", url, headers=headers, extensions=extensions)


def _basic_header(credentials: Credentials) -> str:
    userpass = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(userpass).decode("ascii")


def _token_from(response: httpx.Response, realm: str) -> tuple[str, float | None, float | None]:
    """(token, expires_in, issued_at) from a token response; anything else is a clear error."""
    said = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    if response.status_code >= 500:
        raise ServerError(f"token server {realm} failed: {said}", status=response.status_code)
    if not response.is_success:
        raise RegistryError(f"token server {realm} refused: {said}", status=response.status_code)
    try:
        body = response.json()
    except JSON_ERRORS:
        body = None
    token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise RegistryError(
            f"token server {realm} answered without a token "
            "(expected JSON with 'token' or 'access_token')",
            status=response.status_code,
        )
    return token, _number(body.get("expires_in")), _timestamp(body.get("issued_at"))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _timestamp(value: object) -> float | None:
    """RFC 3339 ``issued_at`` as epoch seconds; an unreadable one is ignored, not fatal."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
