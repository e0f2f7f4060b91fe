"""Tokens stay with their registry, and a token endpoint cannot make us read without end:
the real token-auth registry beside a hostile registry of the attacker's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from fixtures.hostile import HostileRegistry
from layerpeek.core.client import RegistryClient
from layerpeek.core.errors import Unauthorized
from layerpeek.core.service import Layerpeek

pytestmark = pytest.mark.anyio

PRIVATE_SCOPE = "repository:private/secret:pull"
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
