"""Tokens stay with their registry, and a token endpoint cannot make us read without end:
the real token-auth registry beside a hostile registry of the attacker's own."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from fixtures.hostile import Endless, HostileRegistry
from layerpeek.core.errors import RegistryError, Unauthorized
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek

PRIVATE_SCOPE = "repository:private/secret:pull"
MIB = 1024 * 1024
# Loopback socket buffers hold a few MiB that the server writes before it sees the reset.
SENT_AT_MOST = 64 * MIB
UNAUTHORIZED = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "token"}]}).encode()


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with HostileRegistry() as registry:
        yield registry


def login(docker_config: Path, host: str) -> None:
    """Credentials for ``host`` only, as ``docker login host`` writes them."""
    auths = {"auths": {host: {"username": "alice", "password": "wonderland"}}}
    (docker_config / "config.json").write_text(json.dumps(auths))


def claims(authorization: str) -> dict[str, object]:
    """The claims of a Bearer token (signature unchecked: only who it was issued to)."""
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer"
    return jwt.decode(token, options={"verify_signature": False})


def challenge_like(hostile: HostileRegistry, realm: str, service: str, scope: str) -> None:
    """Answer every manifest request of private/secret with a 401 naming ``realm``."""
    header = f'Bearer realm="{realm}",service="{service}",scope="{scope}"'
    for method in ("GET", "HEAD"):
        hostile.route(
            method,
            r"/v2/private/secret/manifests/.*",
            status=401,
            headers={"WWW-Authenticate": header, "Content-Type": "application/json"},
            body=UNAUTHORIZED,
        )


async def test_a_registry_naming_the_real_realm_never_receives_the_real_token(
    layerpeek_env, token_registry, token_server, catalog, hostile
):
    login(layerpeek_env, token_registry.host)
    challenge_like(hostile, token_server.realm, token_server.service, PRIVATE_SCOPE)
    async with RegistryClient() as client:
        peek = Layerpeek(client)
        report = await peek.inspect(catalog.private.ref(token_registry.host))
        assert report.digest == catalog.private.digest
        token_server.reset()
        for _ in range(2):  # the second time, a token cached for the hostile host goes up front
            with pytest.raises(Unauthorized) as caught:
                await peek.inspect(f"{hostile.host}/private/secret:latest")
            assert str(caught.value).startswith(
                f"registry {hostile.host} refused anonymous access for {PRIVATE_SCOPE} "
                f"(no credentials for {hostile.host} in "
            )

    seen = [claims(value) for value in hostile.authorizations()]
    assert seen, "the hostile registry was sent no token at all: the scenario did not run"
    assert [(c["sub"], c["access"]) for c in seen] == [("", [])] * len(seen)
    # Its tokens came from the realm it named, each asked for without anyone's credentials.
    assert {(r.scopes, r.user) for r in token_server.requests} == {((PRIVATE_SCOPE,), None)}


# -- token answers are capped ------------------------------------------------------------------


def challenge_own_realm(hostile: HostileRegistry, **answer: object) -> None:
    """A registry whose manifests ask for a token from its own /token, answered by ``answer``."""
    header = f'Bearer realm="{hostile.url}/token",service="evil",scope="repository:x:pull"'
    hostile.route("GET", r"/v2/x/manifests/.*", status=401, headers={"WWW-Authenticate": header})
    hostile.route("GET", "/token", **answer)


async def inspect_hostile(hostile: HostileRegistry) -> RegistryError:
    async with RegistryClient() as client:
        with pytest.raises(RegistryError) as caught:
            await Layerpeek(client).inspect(f"{hostile.host}/x:latest")
    return caught.value


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
async def test_a_token_endpoint_sending_without_end_is_cut_off_at_1_mib(
    layerpeek_env, hostile, declared
):
    body = Endless()
    challenge_own_realm(hostile, body=body, length=body.total if declared else None)
    error = await inspect_hostile(hostile)
    assert str(error) == (
        f"token server {hostile.url}/token sent an answer larger than 1024 KiB (HTTP 200)"
    )
    assert body.sent() <= SENT_AT_MOST


async def test_a_registry_401_without_end_is_cut_off(layerpeek_env, hostile):
    body = Endless()
    header = f'Bearer realm="{hostile.url}/token",service="evil"'
    hostile.route(
        "GET", r"/v2/x/manifests/.*", status=401, headers={"WWW-Authenticate": header}, body=body
    )
    error = await inspect_hostile(hostile)
    # Its reason is read no further than a reason needs; the flow goes on to the realm.
    assert str(error) == f"token server {hostile.url}/token refused: HTTP 404 Not Found"
    assert body.sent() <= SENT_AT_MOST
    asked = [(r.method, r.path.partition("?")[0]) for r in hostile.requests]
    # The HEAD finds no manifest (404, nothing to read); the GET for its reason meets the 401.
    assert asked == [
        ("HEAD", "/v2/x/manifests/latest"),
        ("GET", "/v2/x/manifests/latest"),
        ("GET", "/token"),
    ]


async def test_a_compressed_token_answer_is_refused_unread(layerpeek_env, hostile):
    bomb = gzip.compress(b"{" + b" " * (64 * MIB) + b"}")  # 64 KiB on the wire
    challenge_own_realm(hostile, headers={"Content-Encoding": "gzip"}, body=bomb)
    error = await inspect_hostile(hostile)
    assert str(error) == (
        f"token server {hostile.url}/token sent an answer with Content-Encoding 'gzip', "
        "not the plain one asked for"
    )
    token_requests = [r for r in hostile.requests if r.path.startswith("/token")]
    assert [r.headers.get("accept-encoding") for r in token_requests] == ["identity"]
