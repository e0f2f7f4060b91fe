"""Authentication against the real registry: htpasswd Basic, Docker-style Bearer tokens, docker
config credentials and helpers, blob redirects to a CDN, and the network guard end to end."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.registry import RegistryProcess
from fixtures.standins import StorageCDN
from fixtures.token_server import DEFAULT_USERS, TokenServer
from layerpeek.core.errors import NetworkRefused, RegistryUnreachable, Unauthorized
from layerpeek.core.layers.reader import BlobReader
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.reference import parse_reference
from layerpeek.core.service import Layerpeek

HELPER_NAME = "layerpeektest"
# The docker-credential protocol: the action is argv[1], the server URL arrives on stdin, the
# answer is {ServerURL, Username, Secret} JSON; "credentials not found" means "none here".
HELPER_SCRIPT = """#!/bin/sh
[ "$1" = get ] || {{ echo "unsupported action: $1" >&2; exit 1; }}
read -r server
echo "$server" >> '{log}'
if [ "$server" = '{host}' ]; then
  printf '{{"ServerURL": "%s", "Username": "alice", "Secret": "wonderland"}}\\n' "$server"
else
  echo "credentials not found in native keychain"
  exit 1
fi
"""


def write_docker_config(directory: Path, config: dict[str, Any]) -> Path:
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def basic_auths(host: str, user: str = "alice", password: str = "wonderland") -> dict[str, Any]:
    """A docker config as ``docker login`` writes it: base64 "user:pass" under the host."""
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"auths": {host: {"auth": encoded}}}


def install_helper(bin_dir: Path, host: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a docker-credential-layerpeektest that knows ``host`` on PATH; returns its call log."""
    bin_dir.mkdir()
    log = bin_dir / "calls.log"
    helper = bin_dir / f"docker-credential-{HELPER_NAME}"
    helper.write_text(HELPER_SCRIPT.format(log=log, host=host))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return log


# -- Basic (htpasswd) ----------------------------------------------------------------------------


async def test_basic_auth_uses_the_docker_config_credentials(
    peek, layerpeek_env, basic_registry, catalog
):
    write_docker_config(layerpeek_env, basic_auths(basic_registry.host))
    report = await peek.inspect(catalog.gzip.ref(basic_registry.host))
    assert report.digest == catalog.gzip.digest
    assert [x.digest for x in report.layers] == [layer.digest for layer in catalog.gzip.layers]


async def test_basic_auth_wrong_password_names_registry_user_and_source(
    peek, layerpeek_env, basic_registry, catalog
):
    config = write_docker_config(
        layerpeek_env, basic_auths(basic_registry.host, password="looking-glass")
    )
    with pytest.raises(Unauthorized) as caught:
        await peek.inspect(catalog.gzip.ref(basic_registry.host))
    message = str(caught.value)
    assert f"registry {basic_registry.host} refused the credentials for user alice" in message
    assert str(config) in message
    assert "looking-glass" not in message and "\n" not in message


async def test_basic_auth_without_a_docker_config_says_where_it_looked(
    peek, layerpeek_env, basic_registry, catalog
):
    with pytest.raises(Unauthorized) as caught:
        await peek.inspect(catalog.gzip.ref(basic_registry.host))
    message = str(caught.value)
    assert f"registry {basic_registry.host} refused anonymous access" in message
    assert f"no docker config at {layerpeek_env / 'config.json'}" in message
    assert f"docker login {basic_registry.host}" in message


async def test_basic_auth_with_credentials_for_another_host_only_says_so(
    peek, layerpeek_env, basic_registry, catalog
):
    config = write_docker_config(layerpeek_env, basic_auths("registry.example:5000"))
    with pytest.raises(Unauthorized) as caught:
        await peek.inspect(catalog.gzip.ref(basic_registry.host))
    assert f"no credentials for {basic_registry.host} in {config}" in str(caught.value)


async def test_credential_helper_from_creds_store_is_asked_once(
    peek, layerpeek_env, basic_registry, catalog, tmp_path, monkeypatch
):
    log = install_helper(tmp_path / "bin", basic_registry.host, monkeypatch)
    write_docker_config(layerpeek_env, {"credsStore": HELPER_NAME})
    report = await peek.inspect(catalog.gzip.ref(basic_registry.host))
    await peek.inspect(catalog.zstd.ref(basic_registry.host))
    assert report.digest == catalog.gzip.digest
    assert log.read_text().splitlines() == [basic_registry.host]


async def test_credential_helper_without_an_answer_is_named_in_the_refusal(
    peek, layerpeek_env, basic_registry, catalog, tmp_path, monkeypatch
):
    install_helper(tmp_path / "bin", "registry.example:5000", monkeypatch)
    write_docker_config(layerpeek_env, {"credsStore": HELPER_NAME})
    with pytest.raises(Unauthorized) as caught:
        await peek.inspect(catalog.gzip.ref(basic_registry.host))
    message = str(caught.value)
    assert "refused anonymous access" in message
    assert f"from docker-credential-{HELPER_NAME} (credsStore in" in message


# -- Bearer tokens ---------------------------------------------------------------------------------


def scope(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull",)


async def test_token_auth_anonymous_pull_of_a_public_image(
    peek, token_registry, token_server, catalog
):
    token_server.reset()
    report = await peek.inspect(catalog.gzip.ref(token_registry.host))
    assert report.digest == catalog.gzip.digest
    assert [(r.method, r.scopes, r.user) for r in token_server.requests] == [
        ("GET", scope("test/gzip"), None)
    ]


async def test_token_auth_private_repository_refuses_anonymous(peek, token_registry, catalog):
    with pytest.raises(Unauthorized) as caught:
        await peek.inspect(catalog.private.ref(token_registry.host))
    message = str(caught.value)
    assert f"registry {token_registry.host} refused anonymous access" in message
    assert "repository:private/secret:pull" in message
    assert f"docker login {token_registry.host}" in message


async def test_token_auth_private_repository_with_credentials(
    peek, layerpeek_env, token_registry, token_server, catalog
):
    write_docker_config(layerpeek_env, basic_auths(token_registry.host))
    token_server.reset()
    report = await peek.inspect(catalog.private.ref(token_registry.host))
    assert report.digest == catalog.private.digest
    assert [(r.scopes, r.user) for r in token_server.requests] == [
        (scope("private/secret"), "alice")
    ]


async def test_token_auth_wrong_password_is_refused_by_the_token_server(
    peek, layerpeek_env, token_registry, token_server, catalog
):
    write_docker_config(layerpeek_env, basic_auths(token_registry.host, password="nope"))
    with pytest.raises(Unauthorized) as caught:
        await peek.inspect(catalog.gzip.ref(token_registry.host))
    message = str(caught.value)
    assert f"token server {token_server.realm} (for registry {token_registry.host})" in message
    assert "refused the credentials for user alice" in message


async def test_token_is_cached_per_repository_scope(peek, token_registry, token_server, catalog):
    await peek.inspect(catalog.gzip.ref(token_registry.host))
    token_server.reset()
    again = await peek.inspect(catalog.gzip.ref(token_registry.host))
    assert again.digest == catalog.gzip.digest
    assert token_server.requests == []
    await peek.inspect(catalog.zstd.ref(token_registry.host))
    assert [r.scopes for r in token_server.requests] == [scope("test/zstd")]


async def test_identity_token_is_exchanged_with_a_refresh_token_grant(
    peek, layerpeek_env, token_registry, token_server, catalog
):
    refresh = token_server.issue_refresh_token("alice")
    write_docker_config(layerpeek_env, {"auths": {token_registry.host: {"identitytoken": refresh}}})
    token_server.reset()
    report = await peek.inspect(catalog.private.ref(token_registry.host))
    assert report.digest == catalog.private.digest
    assert [(r.method, r.grant_type, r.user) for r in token_server.requests] == [
        ("POST", "refresh_token", "alice")
    ]


async def test_token_server_down_is_unreachable_naming_the_token_server(
    layerpeek_env, docker_registry, registry_root, catalog, monkeypatch
):
    monkeypatch.setenv("LAYERPEEK_RETRIES", "1")  # a refused connect is retried; not the point
    dead = TokenServer()
    with RegistryProcess(registry_root, "token", token_server=dead, binary=docker_registry) as reg:
        dead.stop()
        async with RegistryClient() as client:
            with pytest.raises(RegistryUnreachable) as caught:
                await Layerpeek(client).inspect(catalog.gzip.ref(reg.host))
    message = str(caught.value)
    assert f"token server {dead.realm} unreachable" in message
    assert "\n" not in message


# -- credentials never follow a redirect to another host ----------------------------------------


@pytest.fixture(params=["basic", "token"])
def redirecting_registry(
    request, docker_registry, registry_root, plain_registry, token_server
) -> Iterator[tuple[RegistryProcess, StorageCDN]]:
    """A registry whose blob GET/HEAD answer 307 to a CDN serving the same storage root."""
    with StorageCDN(registry_root) as cdn:
        redirect = {"name": "redirect", "options": {"baseurl": f"{cdn.url}/"}}
        auth: dict[str, Any] = (
            {"users": DEFAULT_USERS} if request.param == "basic" else {"token_server": token_server}
        )
        with RegistryProcess(
            registry_root,
            request.param,
            extra_config={"middleware": {"storage": [redirect]}},
            binary=docker_registry,
            **auth,
        ) as process:
            yield process, cdn


def redirect_location(
    registry: RegistryProcess, repo: str, digest: str, tokens: TokenServer
) -> str:
    """Where the registry sends a blob GET (asked directly, with credentials it accepts)."""
    if registry.mode == "basic":
        auth = "Basic " + base64.b64encode(b"alice:wonderland").decode()
    else:
        auth = "Bearer " + tokens.mint([f"repository:{repo}:pull"])
    url = f"{registry.url}/v2/{repo}/blobs/{digest}"
    response = httpx.get(url, headers={"Authorization": auth}, follow_redirects=False)
    assert response.status_code == 307, response.text
    return response.headers["Location"]


async def test_blob_redirects_reach_the_cdn_without_credentials(
    peek, layerpeek_env, redirecting_registry, registry_root, token_server, catalog, tmp_path
):
    registry, cdn = redirecting_registry
    write_docker_config(layerpeek_env, basic_auths(registry.host))
    image = catalog.gzip
    location = redirect_location(registry, image.repo, image.config_digest, token_server)
    data_path = httpx.URL(location).path
    assert location.startswith(f"{cdn.url}/docker/registry/v2/blobs/")
    stored = (registry_root / data_path.lstrip("/")).read_bytes()
    assert "sha256:" + hashlib.sha256(stored).hexdigest() == image.config_digest

    ref = image.ref(registry.host)
    token_server.reset()
    report = await peek.inspect(ref)
    assert report.config.env == image.config["config"].get("Env", [])
    resolved = await peek.resolve(ref)
    paths = [entry.path async for entry in peek.entries(resolved, 0)]
    assert "etc/hostname" in paths
    pulled = await peek.pull_layer(resolved, 1, tmp_path / "layer-1.tar.gz")
    assert Path(pulled.path).read_bytes() == image.layers[1].blob
    reader = BlobReader(peek.client, parse_reference(ref), image.layers[1].digest, start=1000)
    tail = [c async for c in reader.chunks()]
    assert b"".join(tail) == image.layers[1].blob[1000:]

    seen = cdn.requests
    blob_files = {r.path.rsplit("/", 2)[-2] for r in seen}
    digests = [image.config_digest, image.layers[0].digest, image.layers[1].digest]
    assert {d.removeprefix("sha256:") for d in digests} <= blob_files
    assert data_path in {r.path for r in seen}
    assert [r.headers.get("authorization") for r in seen] == [None] * len(seen)
    # The Range survives the redirect (BlobReader asks for windows: "bytes=1000-END").
    assert any((r.headers.get("range") or "").startswith("bytes=1000-") for r in seen)
    if registry.mode == "token":  # the credentials did go where they belong: the realm
        assert {r.user for r in token_server.requests} == {"alice"}


# -- the network guard, end to end ----------------------------------------------------------------


async def test_guard_refuses_the_local_registry_before_sending_anything(
    layerpeek_env, fault_proxy, catalog
):
    async with RegistryClient(guarded=True) as client:
        with pytest.raises(NetworkRefused) as caught:
            await Layerpeek(client).inspect(catalog.gzip.ref(fault_proxy.host))
    message = str(caught.value)
    assert "loopback" in message
    assert f"LAYERPEEK_ALLOW_PRIVATE={fault_proxy.host}" in message
    assert fault_proxy.requests == []


async def test_guard_lets_an_allow_listed_registry_through(
    layerpeek_env, plain_registry, catalog, monkeypatch
):
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", plain_registry.host)
    async with RegistryClient(guarded=True) as client:
        report = await Layerpeek(client).inspect(catalog.gzip.ref(plain_registry.host))
    assert report.digest == catalog.gzip.digest


async def test_guard_checks_the_token_realm_too(
    layerpeek_env, token_registry, token_server, catalog, monkeypatch
):
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", token_registry.host)
    token_server.reset()
    async with RegistryClient(guarded=True) as client:
        with pytest.raises(NetworkRefused) as caught:
            await Layerpeek(client).inspect(catalog.gzip.ref(token_registry.host))
    assert f"LAYERPEEK_ALLOW_PRIVATE={token_server.host}" in str(caught.value)
    assert token_server.requests == []


async def test_guard_with_registry_and_realm_allowed_pulls_with_a_token(
    layerpeek_env, token_registry, token_server, catalog, monkeypatch
):
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", f"{token_registry.host},{token_server.host}")
    token_server.reset()
    async with RegistryClient(guarded=True) as client:
        report = await Layerpeek(client).inspect(catalog.gzip.ref(token_registry.host))
    assert report.digest == catalog.gzip.digest
    assert len(token_server.requests) == 1
