"""Registry auth: challenge parsing, the token cache, and the flow, driven by hand and live."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from layerpeek.core.errors import RegistryError, RegistryUnreachable, ServerError, Unauthorized
from layerpeek.core.registry.auth import (
    TOKEN_REQUEST,
    Challenge,
    RegistryAuth,
    TokenCache,
    TokenKey,
    parse_challenges,
    response_challenges,
    scope_for_path,
    unreachable_error,
)
from layerpeek.core.registry.credentials import Credentials

ALICE = Credentials("alice", "wonderland", None, "/home/alice/.docker/config.json")
REGISTRY = "http://127.0.0.1:5000"
REALM = "https://auth.example.com/token"
BLOB_URL = f"{REGISTRY}/v2/library/alpine/blobs/sha256:abc"
Flow = Generator[httpx.Request, httpx.Response, None]


# -- challenges ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/alpine:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/alpine:pull",
                    },
                )
            ],
            id="docker-hub",
        ),
        pytest.param(
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
            'scope="repository:user/image:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://ghcr.io/token",
                        "service": "ghcr.io",
                        "scope": "repository:user/image:pull",
                    },
                )
            ],
            id="ghcr",
        ),
        pytest.param(
            'Bearer realm="https://quay.io/v2/auth",service="quay.io"',
            [Challenge("bearer", {"realm": "https://quay.io/v2/auth", "service": "quay.io"})],
            id="quay-v2-root",
        ),
        pytest.param(
            'Bearer realm="http://127.0.0.1:1/token",service="s",'
            'scope="repository:a:pull repository:b/c:pull",error="insufficient_scope"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "http://127.0.0.1:1/token",
                        "service": "s",
                        "scope": "repository:a:pull repository:b/c:pull",
                        "error": "insufficient_scope",
                    },
                )
            ],
            id="several-scopes-and-error",
        ),
        pytest.param(
            'Basic realm="Registry Realm"',
            [Challenge("basic", {"realm": "Registry Realm"})],
            id="basic",
        ),
        pytest.param(
            'BASIC Realm="a \\"quoted\\", realm", charset="UTF-8"',
            [Challenge("basic", {"realm": 'a "quoted", realm', "charset": "UTF-8"})],
            id="escaped-quotes-commas-and-case",
        ),
        pytest.param(
            'Negotiate, Bearer realm="https://r/t", service=reg, Basic realm="x"',
            [
                Challenge("negotiate"),
                Challenge("bearer", {"realm": "https://r/t", "service": "reg"}),
                Challenge("basic", {"realm": "x"}),
            ],
            id="several-challenges-unquoted-values",
        ),
        pytest.param("", [], id="empty"),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_challenges_from_several_headers_are_all_read() -> None:
    response = httpx.Response(
        401, headers=[("WWW-Authenticate", 'Basic realm="r"'), ("www-authenticate", "Bearer")]
    )
    assert [c.scheme for c in response_challenges(response)] == ["basic", "bearer"]


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("/v2/", ""),
        ("/v2/library/alpine/manifests/3.20", "repository:library/alpine:pull"),
        ("/v2/a/b/c/blobs/sha256:00", "repository:a/b/c:pull"),
        ("/v2/x/tags/list", "repository:x:pull"),
        ("/v2/odd/manifests/name/manifests/latest", "repository:odd/manifests/name:pull"),
        ("/v2/_catalog", ""),
    ],
)
def test_scope_for_path(path: str, scope: str) -> None:
    assert scope_for_path(path) == scope


# -- token cache -----------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


KEY = TokenKey("127.0.0.1:5000", REALM, "svc", "repository:a:pull")


def test_token_lives_60_seconds_when_the_server_does_not_say() -> None:
    clock = Clock()
    cache = TokenCache(clock, skew=5)
    cache.put(KEY, "t", expires_in=None)
    clock.now += 54
    assert cache.get(KEY) == "t"
    clock.now += 1
    assert cache.get(KEY) is None


def test_token_lives_as_long_as_expires_in_minus_skew() -> None:
    clock = Clock()
    cache = TokenCache(clock, skew=5)
    cache.put(KEY, "t", expires_in=300)
    clock.now += 294
    assert cache.get(KEY) == "t"
    clock.now += 1
    assert cache.get(KEY) is None


def test_issued_at_in_the_past_shortens_the_life() -> None:
    clock = Clock()
    cache = TokenCache(clock, skew=5)
    cache.put(KEY, "t", expires_in=300, issued_at=clock.now - 200)
    clock.now += 95
    assert cache.get(KEY) is None


def test_issued_at_in_the_future_does_not_lengthen_the_life() -> None:
    clock = Clock()
    cache = TokenCache(clock, skew=5)
    cache.put(KEY, "t", expires_in=300, issued_at=clock.now + 3600)
    clock.now += 295
    assert cache.get(KEY) is None


def test_tokens_are_kept_per_registry_realm_service_and_scope() -> None:
    cache = TokenCache(Clock())
    cache.put(KEY, "a", expires_in=300)
    assert cache.get(KEY._replace(scope="repository:b:pull")) is None
    assert cache.get(KEY._replace(service="other")) is None
    assert cache.get(KEY._replace(host="evil.example")) is None
    assert cache.get(KEY) == "a"


# -- the flow, driven by hand ----------------------------------------------------------------


@dataclass
class Resolver:
    """Credentials by host, recording every lookup."""

    table: dict[str, Credentials] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def __call__(self, host: str) -> Credentials | None:
        self.asked.append(host)
        return self.table.get(host)


def _missing(host: str) -> str:
    return f"no credentials for {host} in /nowhere/config.json"


def _auth(resolver: Resolver | None = None, cache: TokenCache | None = None) -> RegistryAuth:
    return RegistryAuth(resolver or Resolver(), cache or TokenCache(Clock()), _missing)


def _request(url: str = BLOB_URL) -> httpx.Request:
    timeout = httpx.Timeout(7.0).as_dict()
    return httpx.Request(
        "GET", url, headers={"User-Agent": "lp/1"}, extensions={"timeout": timeout}
    )


def _bearer_401(request: httpx.Request, realm: str = REALM, **extra: str) -> httpx.Response:
    params = {"realm": realm, "service": "svc", "scope": scope_for_path(request.url.path)}
    params |= extra
    value = "Bearer " + ",".join(f'{k}="{v}"' for k, v in params.items() if v)
    return httpx.Response(401, headers={"WWW-Authenticate": value}, request=request)


def _ok(request: httpx.Request, **kwargs: object) -> httpx.Response:
    return httpx.Response(200, request=request, **kwargs)  # type: ignore[arg-type]


def _finishes(flow: Flow, response: httpx.Response) -> bool:
    try:
        flow.send(response)
    except StopIteration:
        return True
    return False


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _token_round(
    flow: Flow, request: httpx.Request, token_body: dict[str, object]
) -> httpx.Request:
    """401 → the flow asks the realm → answer → return the retried registry request."""
    token_request = flow.send(_bearer_401(request))
    return flow.send(_ok(token_request, json=token_body))


def test_anonymous_bearer_flow_fetches_a_token_and_retries_once() -> None:
    resolver = Resolver()
    request = _request()
    flow = _auth(resolver).auth_flow(request)
    assert next(flow) is request
    assert "Authorization" not in request.headers

    token_request = flow.send(_bearer_401(request))
    assert token_request.method == "GET"
    assert token_request.url.copy_with(query=None) == REALM
    assert parse_qs(token_request.url.query.decode()) == {
        "service": ["svc"],
        "scope": ["repository:library/alpine:pull"],
    }
    assert "Authorization" not in token_request.headers

    retried = flow.send(_ok(token_request, json={"token": "tok1"}))
    assert retried.headers["Authorization"] == "Bearer tok1"
    assert _finishes(flow, _ok(retried))
    assert resolver.asked == ["127.0.0.1:5000"]


def test_token_request_carries_basic_credentials_timeout_and_user_agent() -> None:
    request = _request()
    flow = _auth(Resolver({"127.0.0.1:5000": ALICE})).auth_flow(request)
    next(flow)
    token_request = flow.send(_bearer_401(request))
    assert token_request.headers["Authorization"] == _basic("alice", "wonderland")
    assert token_request.headers["User-Agent"] == "lp/1"
    assert token_request.extensions["timeout"] == request.extensions["timeout"]
    assert token_request.extensions[TOKEN_REQUEST] is True


def test_several_scopes_become_repeated_scope_parameters() -> None:
    request = _request()
    flow = _auth().auth_flow(request)
    next(flow)
    token_request = flow.send(_bearer_401(request, scope="repository:a:pull repository:b:pull"))
    assert token_request.url.params.get_list("scope") == ["repository:a:pull", "repository:b:pull"]


def test_realm_query_is_kept() -> None:
    request = _request()
    flow = _auth().auth_flow(request)
    next(flow)
    token_request = flow.send(_bearer_401(request, realm="https://auth.example.com/t?tenant=x"))
    assert token_request.url.params["tenant"] == "x"
    assert token_request.url.params["service"] == "svc"


def test_identity_token_is_exchanged_with_an_oauth2_refresh_post() -> None:
    creds = Credentials("", "", "refresh-me", "/x/config.json")
    request = _request()
    flow = _auth(Resolver({"127.0.0.1:5000": creds})).auth_flow(request)
    next(flow)
    token_request = flow.send(_bearer_401(request))
    assert token_request.method == "POST"
    assert "Authorization" not in token_request.headers
    assert parse_qs(token_request.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-me"],
        "service": ["svc"],
        "scope": ["repository:library/alpine:pull"],
        "client_id": ["layerpeek"],
    }
    retried = flow.send(_ok(token_request, json={"access_token": "oauth-tok"}))
    assert retried.headers["Authorization"] == "Bearer oauth-tok"


def test_cached_token_is_sent_up_front_for_the_same_repository_only() -> None:
    auth = _auth()
    first = _request()
    flow = auth.auth_flow(first)
    next(flow)
    _token_round(flow, first, {"token": "tok1", "expires_in": 300})

    again = _request(f"{REGISTRY}/v2/library/alpine/manifests/latest")
    assert next(auth.auth_flow(again)).headers["Authorization"] == "Bearer tok1"
    other_repo = _request(f"{REGISTRY}/v2/library/debian/manifests/latest")
    assert "Authorization" not in next(auth.auth_flow(other_repo)).headers
    other_host = _request("http://127.0.0.1:6000/v2/library/alpine/manifests/latest")
    assert "Authorization" not in next(auth.auth_flow(other_host)).headers


def test_a_registry_naming_anothers_realm_service_and_scope_gets_a_token_of_its_own() -> None:
    resolver = Resolver({"127.0.0.1:5000": ALICE})
    auth = _auth(resolver)
    first = _request()
    flow = auth.auth_flow(first)
    next(flow)
    _token_round(flow, first, {"token": "alices-token", "expires_in": 300})

    # Same path, and a challenge naming the same realm, service and scope: only the host differs.
    hostile = _request("http://127.0.0.1:6000/v2/library/alpine/blobs/sha256:abc")
    flow = auth.auth_flow(hostile)
    assert "Authorization" not in next(flow).headers
    token_request = flow.send(_bearer_401(hostile))
    assert token_request.extensions[TOKEN_REQUEST] is True
    assert "Authorization" not in token_request.headers  # 127.0.0.1:6000 has no credentials
    retried = flow.send(_ok(token_request, json={"token": "its-own", "expires_in": 300}))
    assert retried.headers["Authorization"] == "Bearer its-own"
    assert _finishes(flow, _ok(retried))
    again = _request("http://127.0.0.1:6000/v2/library/alpine/manifests/latest")
    assert next(auth.auth_flow(again)).headers["Authorization"] == "Bearer its-own"
    assert resolver.asked == ["127.0.0.1:5000", "127.0.0.1:6000"]


def test_expired_token_is_not_sent_up_front() -> None:
    clock = Clock()
    auth = _auth(cache=TokenCache(clock))
    first = _request()
    flow = auth.auth_flow(first)
    next(flow)
    _token_round(flow, first, {"token": "tok1", "expires_in": 30})
    clock.now += 30
    assert "Authorization" not in next(auth.auth_flow(_request())).headers


def test_a_rejected_cached_token_is_replaced_not_resent() -> None:
    auth = _auth()
    first = _request()
    flow = auth.auth_flow(first)
    next(flow)
    _token_round(flow, first, {"token": "revoked", "expires_in": 300})

    second = _request()
    flow = auth.auth_flow(second)
    assert next(flow).headers["Authorization"] == "Bearer revoked"
    token_request = flow.send(_bearer_401(second))
    assert token_request.extensions[TOKEN_REQUEST] is True
    retried = flow.send(_ok(token_request, json={"token": "fresh"}))
    assert retried.headers["Authorization"] == "Bearer fresh"


def test_second_401_names_registry_user_and_source() -> None:
    request = _request()
    flow = _auth(Resolver({"127.0.0.1:5000": ALICE})).auth_flow(request)
    next(flow)
    retried = _token_round(flow, request, {"token": "t"})
    with pytest.raises(Unauthorized) as caught:
        flow.send(_bearer_401(retried, error="insufficient_scope"))
    assert str(caught.value) == (
        "registry 127.0.0.1:5000 refused the credentials for user alice for "
        "repository:library/alpine:pull (from /home/alice/.docker/config.json)"
    )
    assert caught.value.status == 401


def test_second_401_without_credentials_says_where_none_were_found() -> None:
    request = _request()
    flow = _auth().auth_flow(request)
    next(flow)
    retried = _token_round(flow, request, {"token": "anonymous"})
    with pytest.raises(Unauthorized) as caught:
        flow.send(_bearer_401(retried, error="insufficient_scope"))
    message = str(caught.value)
    assert message.startswith("registry 127.0.0.1:5000 refused anonymous access for repository:")
    assert "no credentials for 127.0.0.1:5000 in /nowhere/config.json" in message
    assert "docker login 127.0.0.1:5000" in message


def test_token_server_refusal_names_the_token_server() -> None:
    request = _request()
    flow = _auth(Resolver({"127.0.0.1:5000": ALICE})).auth_flow(request)
    next(flow)
    token_request = flow.send(_bearer_401(request))
    with pytest.raises(Unauthorized, match=f"^token server {REALM} \\(for registry 127"):
        flow.send(httpx.Response(401, request=token_request))


@pytest.mark.parametrize(
    ("response", "error", "text"),
    [
        (httpx.Response(503), ServerError, "failed: HTTP 503 Service Unavailable"),
        (httpx.Response(400), RegistryError, "refused: HTTP 400 Bad Request"),
        (httpx.Response(200, text="<html>login</html>"), RegistryError, "without a token"),
        (httpx.Response(200, json={"token": ""}), RegistryError, "without a token"),
        (httpx.Response(200, json=["token"]), RegistryError, "without a token"),
    ],
)
def test_a_broken_token_server_is_a_clear_error(
    response: httpx.Response, error: type[Exception], text: str
) -> None:
    request = _request()
    flow = _auth().auth_flow(request)
    next(flow)
    response.request = flow.send(_bearer_401(request))
    with pytest.raises(error) as caught:
        flow.send(response)
    assert str(caught.value).startswith(f"token server {REALM} ")
    assert text in str(caught.value)


def test_basic_challenge_retries_once_with_the_hosts_credentials() -> None:
    request = _request()
    flow = _auth(Resolver({"127.0.0.1:5000": ALICE})).auth_flow(request)
    next(flow)
    challenge = httpx.Response(
        401, headers={"WWW-Authenticate": 'Basic realm="r"'}, request=request
    )
    retried = flow.send(challenge)
    assert retried.headers["Authorization"] == _basic("alice", "wonderland")
    with pytest.raises(Unauthorized) as caught:
        flow.send(httpx.Response(401, request=retried))
    assert str(caught.value) == (
        "registry 127.0.0.1:5000 refused the credentials for user alice "
        "(from /home/alice/.docker/config.json)"
    )


def test_basic_challenge_without_credentials_is_unauthorized() -> None:
    request = _request()
    flow = _auth().auth_flow(request)
    next(flow)
    challenge = httpx.Response(401, headers={"WWW-Authenticate": "Basic"}, request=request)
    with pytest.raises(Unauthorized, match="refused anonymous access \\(no credentials for 127"):
        flow.send(challenge)


def test_success_needs_no_credentials_lookup() -> None:
    resolver = Resolver()
    request = _request()
    flow = _auth(resolver).auth_flow(request)
    next(flow)
    assert _finishes(flow, _ok(request))
    assert resolver.asked == []


def test_401_from_a_redirect_target_is_returned_without_any_credentials() -> None:
    resolver = Resolver({"127.0.0.1:5000": ALICE})
    request = _request()
    flow = _auth(resolver).auth_flow(request)
    next(flow)
    elsewhere = httpx.Request("GET", "https://cdn.example.com/blob")
    assert _finishes(flow, _bearer_401(elsewhere, realm="https://cdn.example.com/token"))
    assert resolver.asked == []


def test_401_without_a_challenge_is_returned_as_is() -> None:
    request = _request()
    flow = _auth().auth_flow(request)
    next(flow)
    assert _finishes(flow, httpx.Response(401, request=request))


@pytest.mark.parametrize("header", ["Bearer service=x", 'Bearer realm="/relative"', "Bearer"])
def test_bearer_challenge_without_a_usable_realm_is_unauthorized(header: str) -> None:
    request = _request()
    flow = _auth().auth_flow(request)
    next(flow)
    with pytest.raises(Unauthorized, match="without a usable realm"):
        flow.send(httpx.Response(401, headers={"WWW-Authenticate": header}, request=request))


def test_unknown_scheme_is_unauthorized_naming_it() -> None:
    request = _request()
    flow = _auth().auth_flow(request)
    next(flow)
    with pytest.raises(Unauthorized, match="asks for negotiate authentication"):
        flow.send(httpx.Response(401, headers={"WWW-Authenticate": "Negotiate"}, request=request))


def test_credentials_are_resolved_once_per_host() -> None:
    resolver = Resolver({"127.0.0.1:5000": ALICE})
    auth = _auth(resolver)
    for path in ("a", "b"):
        request = _request(f"{REGISTRY}/v2/{path}/manifests/1")
        flow = auth.auth_flow(request)
        next(flow)
        _token_round(flow, request, {"token": path})
    assert resolver.asked == ["127.0.0.1:5000"]


def test_issued_at_from_the_token_server_is_honoured() -> None:
    clock = Clock(datetime(2024, 5, 1, 12, 0, 10, tzinfo=UTC).timestamp())
    auth = _auth(cache=TokenCache(clock, skew=0))
    request = _request()
    flow = auth.auth_flow(request)
    next(flow)
    body = {"token": "t", "expires_in": 60, "issued_at": "2024-05-01T12:00:00.123456789Z"}
    _token_round(flow, request, body)
    clock.now += 49  # 12:00:59, issued at 12:00:00.12: still valid
    assert next(auth.auth_flow(_request())).headers["Authorization"] == "Bearer t"
    clock.now += 2  # 12:01:01: 60 s after issued_at, though only 51 s after we got it
    assert "Authorization" not in next(auth.auth_flow(_request())).headers


# -- the flow inside a real client, against real local servers -------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


Handler = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


@contextmanager
def serve(handler: Handler) -> Iterator[tuple[str, list[Seen]]]:
    """A stdlib HTTP server on 127.0.0.1:0 in a thread; yields its base URL and what it saw."""
    seen: list[Seen] = []

    class _Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(Seen(self.command, self.path, dict(self.headers.items())))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status, headers, body = handler(self)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_HEAD = _answer

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output clean."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    # A short poll interval only makes shutdown() prompt; nothing waits on time.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _bearer_registry(redirect_to: str, realm: str = "", public: bool = False) -> Handler:
    """A token-auth registry whose blob GET redirects (like Hub's CDN) once authorised.

    Its token realm is its own /token unless ``realm`` names another; ``public`` redirects
    blob GETs without asking for a token first.
    """

    def handle(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(req.path).path
        own_realm = f"http://127.0.0.1:{req.server.server_address[1]}/token"
        if path == "/token":
            ok = req.headers.get("Authorization") == _basic("alice", "wonderland")
            body = {"token": "good-token", "expires_in": 300}
            return (200, {}, json.dumps(body).encode()) if ok else (401, {}, b"")
        authorised = public or req.headers.get("Authorization") == "Bearer good-token"
        if not authorised:
            challenge = (
                f'Bearer realm="{realm or own_realm}",service="reg",scope="{scope_for_path(path)}"'
            )
            return 401, {"WWW-Authenticate": challenge}, b""
        return 307, {"Location": f"{redirect_to}/blob"}, b""

    return handle


def _cdn(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b"blob-bytes"


def _cdn_with_its_own_challenge(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
    port = req.server.server_address[1]
    return 401, {"WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{port}/token"'}, b""


async def test_credentials_reach_registry_and_realm_but_never_the_redirect_target() -> None:
    thread_ids: list[int] = []

    def resolve(host: str) -> Credentials | None:
        thread_ids.append(threading.get_ident())
        return ALICE if host == registry_host else None

    with (
        serve(_cdn) as (cdn_url, cdn_seen),
        serve(_bearer_registry(cdn_url)) as (reg_url, reg_seen),
    ):
        registry_host = reg_url.removeprefix("http://")
        auth = RegistryAuth(resolve, TokenCache(), _missing)
        async with httpx.AsyncClient(auth=auth, follow_redirects=True) as client:
            response = await client.get(f"{reg_url}/v2/library/alpine/blobs/sha256:abc")

    assert response.status_code == 200
    assert response.content == b"blob-bytes"
    assert [s.path.split("?")[0] for s in reg_seen] == [
        "/v2/library/alpine/blobs/sha256:abc",
        "/token",
        "/v2/library/alpine/blobs/sha256:abc",
    ]
    assert reg_seen[1].headers["Authorization"] == _basic("alice", "wonderland")
    assert [s.headers.get("Authorization") for s in cdn_seen] == [None]
    assert thread_ids and threading.get_ident() not in thread_ids


@pytest.mark.parametrize("public", [True, False], ids=["public-registry", "token-registry"])
async def test_a_redirect_targets_own_challenge_gets_nothing(public: bool) -> None:
    resolver = Resolver()
    with (
        serve(_cdn_with_its_own_challenge) as (cdn_url, cdn_seen),
        serve(_bearer_registry(cdn_url, public=public)) as (reg_url, _),
    ):
        resolver.table[reg_url.removeprefix("http://")] = ALICE
        auth = RegistryAuth(resolver, TokenCache(), _missing)
        async with httpx.AsyncClient(auth=auth, follow_redirects=True) as client:
            response = await client.get(f"{reg_url}/v2/x/blobs/sha256:abc")

    assert response.status_code == 401
    assert [(s.path, s.headers.get("Authorization")) for s in cdn_seen] == [("/blob", None)]
    assert resolver.asked == ([] if public else [reg_url.removeprefix("http://")])


async def test_unreachable_token_server_is_reported_as_such() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        realm = f"http://127.0.0.1:{closed.getsockname()[1]}/token"
        with serve(_bearer_registry("http://unused", realm)) as (reg_url, _):
            auth = RegistryAuth(Resolver(), TokenCache(), _missing)
            async with httpx.AsyncClient(auth=auth) as client:
                with pytest.raises(httpx.ConnectError) as caught:
                    await client.get(f"{reg_url}/v2/x/manifests/latest")

    error = unreachable_error(caught.value)
    assert isinstance(error, RegistryUnreachable)
    assert str(error).startswith(f"token server {realm} unreachable: ")


async def test_unreachable_registry_is_reported_as_such() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        async with httpx.AsyncClient(auth=_auth()) as client:
            with pytest.raises(httpx.ConnectError) as caught:
                await client.get(f"http://127.0.0.1:{port}/v2/")

    assert str(unreachable_error(caught.value)).startswith(f"registry 127.0.0.1:{port} unreachable")


def test_sync_client_reads_the_token_response_too() -> None:
    with serve(_bearer_registry("http://unused")) as (reg_url, _):
        resolver = Resolver({reg_url.removeprefix("http://"): ALICE})
        with httpx.Client(auth=RegistryAuth(resolver, TokenCache(), _missing)) as client:
            response = client.get(f"{reg_url}/v2/x/blobs/sha256:abc")
    assert response.status_code == 307
