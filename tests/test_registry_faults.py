"""What the client does when the network or the registry misbehaves: 429/5xx and Retry-After,
Docker Hub's rate-limit headers, bytes that do not match their digest, dropped connections, and
pulls that must leave nothing behind. Faults come from a proxy in front of the real registry."""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from stamina.instrumentation import get_on_retry_hooks, set_on_retry_hooks

from fixtures.commands import cli, one_line
from fixtures.images import DOCKER_MANIFEST
from fixtures.proxy import FaultProxy
from layerpeek.core.errors import (
    DigestMismatch,
    LayerpeekError,
    RateLimited,
    RegistryUnreachable,
    ServerError,
)
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings

MANIFEST = r"/v2/test/gzip/manifests/latest$"


@contextlib.asynccontextmanager
async def layerpeek() -> AsyncIterator[Layerpeek]:
    """A client built now, so settings the test put in the environment apply."""
    async with RegistryClient() as client:
        yield Layerpeek(client)


def statuses(proxy: FaultProxy, path_regex: str) -> list[tuple[int | None, str | None]]:
    """(status, fault) of every request the proxy saw for ``path_regex``, in order."""
    pattern = re.compile(path_regex)
    return [(r.status, r.fault) for r in proxy.requests if pattern.search(r.path)]


def blob_path(digest: str) -> str:
    return rf"/blobs/{re.escape(digest)}$"


# -- retries on 429 and 5xx ---------------------------------------------------------------------


async def test_429_with_retry_after_zero_is_retried(layerpeek_env, fault_proxy, catalog):
    fault_proxy.inject(MANIFEST, 429, {"Retry-After": "0"})
    async with layerpeek() as peek:
        report = await peek.inspect(catalog.gzip.ref(fault_proxy.host))
    assert report.digest == catalog.gzip.digest
    assert statuses(fault_proxy, MANIFEST) == [(429, "inject"), (200, None)]


async def test_500_is_retried(layerpeek_env, fault_proxy, catalog):
    error = {"errors": [{"code": "UNKNOWN", "message": "storage backend hiccup"}]}
    fault_proxy.inject(
        MANIFEST, 500, {"Content-Type": "application/json"}, json.dumps(error).encode()
    )
    async with layerpeek() as peek:
        report = await peek.inspect(catalog.gzip.ref(fault_proxy.host))
    assert report.digest == catalog.gzip.digest
    assert statuses(fault_proxy, MANIFEST) == [(500, "inject"), (200, None)]


async def test_503_on_every_attempt_is_a_server_error_after_the_configured_attempts(
    layerpeek_env, fault_proxy, catalog, monkeypatch
):
    monkeypatch.setenv("LAYERPEEK_RETRIES", "3")
    # Retry-After: 0 keeps the test fast; the count is what matters.
    fault_proxy.inject(MANIFEST, 503, {"Retry-After": "0"}, times=10)
    async with layerpeek() as peek:
        with pytest.raises(ServerError) as caught:
            await peek.inspect(catalog.gzip.ref(fault_proxy.host))
    message = str(caught.value)
    assert "manifest" in message and "test/gzip:latest" in message and "503" in message
    assert caught.value.status == 503
    assert statuses(fault_proxy, MANIFEST) == [(503, "inject")] * 3


async def test_429_asking_for_an_hour_fails_at_once(layerpeek_env, fault_proxy, catalog):
    fault_proxy.inject(MANIFEST, 429, {"Retry-After": "3600"}, times=10)
    async with layerpeek() as peek:
        with pytest.raises(RateLimited) as caught:
            await peek.inspect(catalog.gzip.ref(fault_proxy.host))
    assert "retry after 3600 s" in str(caught.value)
    assert caught.value.retry_after == 3600
    assert statuses(fault_proxy, MANIFEST) == [(429, "inject")]


async def test_docker_hub_rate_limit_headers_appear_in_the_message(
    layerpeek_env, fault_proxy, catalog, monkeypatch
):
    monkeypatch.setenv("LAYERPEEK_RETRIES", "1")
    hub = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}
    fault_proxy.inject(MANIFEST, 429, hub, times=10)
    async with layerpeek() as peek:
        with pytest.raises(RateLimited) as caught:
            await peek.inspect(catalog.gzip.ref(fault_proxy.host))
    message = str(caught.value)
    assert "rate limited" in message and "retry later" in message
    assert "0 of 100 pulls left per 6 h window" in message
    assert statuses(fault_proxy, MANIFEST) == [(429, "inject")]


# -- bytes that do not match their digest --------------------------------------------------------


def impostor_manifest() -> bytes:
    """A well-formed manifest that is not the one asked for."""
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2}
    config["digest"] = "sha256:" + "0" * 64
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config}).encode()


async def test_manifest_by_digest_with_other_bytes_is_a_digest_mismatch(
    layerpeek_env, fault_proxy, catalog
):
    image = catalog.gzip
    path = rf"/manifests/{re.escape(image.digest)}$"
    # Both the HEAD that asks whether the manifest exists and the GET of its body.
    fault_proxy.inject(path, 200, {"Content-Type": DOCKER_MANIFEST}, impostor_manifest(), times=2)
    async with layerpeek() as peek:
        with pytest.raises(DigestMismatch) as caught:
            await peek.inspect(image.digest_ref(fault_proxy.host))
    assert f"expected {image.digest}" in str(caught.value)
    assert statuses(fault_proxy, path) == [(200, "inject")] * 2


async def test_the_digest_a_tag_answer_names_is_what_its_body_is_checked_against(
    layerpeek_env, fault_proxy, catalog
):
    headers = {"Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": catalog.gzip.digest}
    fault_proxy.inject(MANIFEST, 200, headers)  # the HEAD: the tag is this digest now
    by_digest = rf"/manifests/{re.escape(catalog.gzip.digest)}$"
    fault_proxy.inject(by_digest, 200, headers, impostor_manifest())
    async with layerpeek() as peek:
        with pytest.raises(DigestMismatch, match=re.escape(f"expected {catalog.gzip.digest}")):
            await peek.inspect(catalog.gzip.ref(fault_proxy.host))


# -- dropped connections ---------------------------------------------------------------------------


async def test_connection_cut_in_a_config_blob_is_unreachable(layerpeek_env, fault_proxy, catalog):
    """The status line and headers arrive, then the body stops: a registry that dropped us, said
    as such (not a raw HTTP library error a front end would print as a traceback)."""
    image = catalog.gzip
    fault_proxy.cut_after(blob_path(image.config_digest), 100)
    async with layerpeek() as peek:
        with pytest.raises(RegistryUnreachable) as caught:
            await peek.inspect(image.ref(fault_proxy.host))
    message = str(caught.value)
    assert "connection lost" in message and image.config_digest in message
    assert statuses(fault_proxy, blob_path(image.config_digest)) == [(200, "cut")]


async def test_connection_cut_in_a_manifest_is_unreachable(layerpeek_env, fault_proxy, catalog):
    # The tag is asked with a HEAD (no body); the body is then read by digest.
    fault_proxy.cut_after(rf"/manifests/{re.escape(catalog.gzip.digest)}$", 50)
    async with layerpeek() as peek:
        with pytest.raises(RegistryUnreachable, match=r"connection lost .*manifest"):
            await peek.inspect(catalog.gzip.ref(fault_proxy.host))


# -- pulls ---------------------------------------------------------------------------------------


async def test_pull_writes_exactly_the_blob(layerpeek_env, fault_proxy, catalog, tmp_path):
    image = catalog.gzip
    out = tmp_path / "out"
    out.mkdir()
    async with layerpeek() as peek:
        resolved = await peek.resolve(image.ref(fault_proxy.host))
        result = await peek.pull_layer(resolved, 1, out / "layer.tar.gz")
    layer = image.layers[1]
    assert (out / "layer.tar.gz").read_bytes() == layer.blob
    assert (result.digest, result.size, result.media_type) == (
        layer.digest,
        layer.size,
        layer.media_type,
    )
    assert [p.name for p in out.iterdir()] == ["layer.tar.gz"]


def cut_mid_blob(proxy: FaultProxy, digest: str) -> None:
    # A cut that delivers nothing, enough times to outlast every resume the reader makes (a cut
    # after some bytes is resumed from the next byte: see test_range_engine.py).
    proxy.cut_after(blob_path(digest), 0, times=20)


def wrong_bytes(proxy: FaultProxy, digest: str) -> None:
    headers = {"Content-Type": "application/octet-stream"}
    proxy.inject(blob_path(digest), 200, headers, b"not the layer you asked for", times=20)


@pytest.mark.parametrize(
    ("fault", "error"),
    [(cut_mid_blob, RegistryUnreachable), (wrong_bytes, DigestMismatch)],
    ids=["cut", "wrong-bytes"],
)
async def test_failed_pull_leaves_no_file_behind(
    layerpeek_env, fault_proxy, catalog, tmp_path, fault, error
):
    image = catalog.gzip
    out = tmp_path / "out"
    out.mkdir()
    async with layerpeek() as peek:
        resolved = await peek.resolve(image.ref(fault_proxy.host))
        fault(fault_proxy, image.layers[1].digest)
        with pytest.raises(LayerpeekError) as caught:
            await peek.pull_layer(resolved, 1, out / "layer.tar.gz")
    assert isinstance(caught.value, error)
    assert image.layers[1].digest in str(caught.value)
    assert list(out.iterdir()) == []


async def test_the_unguarded_client_honours_the_proxy_environment(
    monkeypatch, layerpeek_env, plain_registry, fault_proxy, catalog
):
    """The CLI reaches registries through HTTP_PROXY like docker does: the registry is named
    directly, the proxy sees the request."""
    monkeypatch.setenv("HTTP_PROXY", fault_proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with RegistryClient() as client:
        report = await Layerpeek(client).inspect(catalog.zstd.ref(plain_registry.host))
    assert report.digest == catalog.zstd.digest
    assert any("/manifests/" in r.path for r in fault_proxy.requests)


async def test_the_guarded_client_never_goes_through_a_proxy(
    monkeypatch, layerpeek_env, plain_registry, fault_proxy, catalog
):
    """A proxy would connect where the guard cannot check: guarded clients ignore it."""
    monkeypatch.setenv("HTTP_PROXY", fault_proxy.url)
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", plain_registry.host)
    async with RegistryClient(guarded=True) as client:
        report = await Layerpeek(client).inspect(catalog.zstd.ref(plain_registry.host))
    assert report.digest == catalog.zstd.digest
    assert fault_proxy.requests == []


# -- failures: one line, no retry log, no retry of what retrying cannot mend ------------------


def closed_port() -> int:
    """A port nothing listens on (bound, then released), so connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_network_failure_is_one_line_without_retry_logs(layerpeek_env):
    done = cli("inspect", f"127.0.0.1:{closed_port()}/app")
    assert done.returncode == 3
    assert one_line(done.stderr).startswith("layerpeek: error: registry 127.0.0.1:")


@pytest.fixture
def retries() -> Iterator[list[object]]:
    """Every retry stamina schedules from here on (the client installs its hook when it is
    made; this one is added after)."""
    scheduled: list[object] = []
    before = get_on_retry_hooks()
    yield scheduled
    set_on_retry_hooks(before)


async def count_retries(retries: list[object], reference: str) -> int:
    async with RegistryClient(Settings(retries=3)) as client:
        set_on_retry_hooks([*get_on_retry_hooks(), retries.append])
        with pytest.raises(RegistryUnreachable):
            await Layerpeek(client).inspect(reference)
    return len(retries)


async def test_a_name_that_does_not_resolve_is_final_and_a_refusal_is_retried(
    layerpeek_env, retries
):
    assert await count_retries(retries, "registry.invalid/app:1") == 0
    assert await count_retries(retries, f"127.0.0.1:{closed_port()}/app:1") == 2
