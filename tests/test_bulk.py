"""Bulk windows: after httpx's first answer, a blob's later ranges are read on that route by
``http.client`` in a worker thread. Bytes and statuses are counted at the proxy in front of
the real registry; whatever the bulk route cannot serve goes back through httpx."""

from __future__ import annotations

import base64
import json
import re
from functools import partial

import httpx
import pytest

from fixtures.proxy import FaultProxy
from layerpeek.core.errors import NetworkRefused
from layerpeek.core.layers.reader import FIRST_WINDOW, BlobReader
from layerpeek.core.registry.bulk import BulkReader, Route
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.guard import NetworkGuard
from layerpeek.core.registry.reference import parse_reference

_TLS = httpx.create_ssl_context()


def blob_path(digest: str) -> str:
    return rf"/blobs/{re.escape(digest)}$"


def statuses(proxy: FaultProxy, digest: str) -> list[int | None]:
    return [r.status for r in proxy.requests if re.search(blob_path(digest), r.path)]


async def read_blob(
    client: RegistryClient, host: str, image, digest: str
) -> tuple[BlobReader, bytes]:
    """The whole blob, and the reader that read it (its request counters)."""
    reader = BlobReader(client, parse_reference(image.ref(host)), digest)
    return reader, b"".join([chunk async for chunk in reader.chunks()])


async def test_windows_after_the_first_are_read_in_bulk(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    assert layer.size > FIRST_WINDOW
    async with RegistryClient() as client:
        reader, data = await read_blob(client, fault_proxy.host, catalog.gzip, layer.digest)
    assert data == layer.blob
    assert reader.bulk_requests == reader.requests - 1 >= 1
    assert statuses(fault_proxy, layer.digest) == [206] * reader.requests
    assert fault_proxy.body_bytes(blob_path(layer.digest)) == layer.size


async def test_bulk_windows_carry_the_token_the_first_window_earned(
    layerpeek_env, token_registry, token_server, catalog
):
    layer = catalog.gzip.layers[1]
    with FaultProxy(token_registry.url) as proxy:
        login = base64.b64encode(b"alice:wonderland").decode()
        config = {"auths": {proxy.host: {"auth": login}}}
        (layerpeek_env / "config.json").write_text(json.dumps(config))
        token_server.reset()
        async with RegistryClient() as client:
            reader, data = await read_blob(client, proxy.host, catalog.gzip, layer.digest)
        seen = statuses(proxy, layer.digest)
    assert data == layer.blob
    assert reader.bulk_requests >= 1
    # One challenge, then every window answered: no bulk window was refused for want of it.
    assert seen == [401] + [206] * reader.requests
    assert len([r for r in token_server.requests if r.status == 200]) == 1


async def read_after_a_fault(fault_proxy, catalog, fault) -> tuple[BlobReader, bytes]:
    """Read the first chunk (the window through httpx, which finds the route), arm
    ``fault`` for the next request (a bulk window), then read the rest."""
    layer = catalog.gzip.layers[1]
    async with RegistryClient() as client:
        ref = parse_reference(catalog.gzip.ref(fault_proxy.host))
        reader = BlobReader(client, ref, layer.digest)
        first = await reader.read()
        fault(blob_path(layer.digest))
        rest = b"".join([chunk async for chunk in reader.chunks()])
    return reader, first + rest


async def test_a_refused_bulk_window_goes_back_through_httpx(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    # An expired token or CDN signature looks like this to the bulk route.
    refuse = partial(fault_proxy.inject, status=401, headers={"WWW-Authenticate": "Bearer"})
    _, data = await read_after_a_fault(fault_proxy, catalog, refuse)
    assert data == layer.blob
    assert statuses(fault_proxy, layer.digest)[:3] == [206, 401, 206]
    assert fault_proxy.body_bytes(blob_path(layer.digest)) == layer.size


async def test_a_cut_bulk_window_resumes_from_the_next_byte(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    cut = partial(fault_proxy.cut_after, nbytes=50_000, times=2)
    reader, data = await read_after_a_fault(fault_proxy, catalog, cut)
    assert data == layer.blob
    assert fault_proxy.body_bytes(blob_path(layer.digest)) == layer.size
    assert reader.bulk_requests >= 1


async def test_a_guarded_client_reads_bulk_windows_from_allowed_hosts(
    layerpeek_env, plain_registry, catalog, monkeypatch
):
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", plain_registry.host)
    layer = catalog.gzip.layers[1]
    async with RegistryClient(guarded=True) as client:
        reader, data = await read_blob(client, plain_registry.host, catalog.gzip, layer.digest)
    assert data == layer.blob
    assert reader.bulk_requests >= 1


def test_a_bulk_connection_is_vetted_by_the_guard(plain_registry, catalog):
    layer = catalog.gzip.layers[1]
    url = httpx.URL(f"{plain_registry.url}/v2/{catalog.gzip.repo}/blobs/{layer.digest}")
    guarded = BulkReader(NetworkGuard(), _TLS, 5.0, use_proxies=False)
    with pytest.raises(NetworkRefused, match="loopback"):
        guarded.open(Route(url, ()), 0, 9)
    allowed = BulkReader(NetworkGuard([plain_registry.host]), _TLS, 5.0, use_proxies=False)
    body = allowed.open(Route(url, ()), 0, 9)
    assert body is not None
    try:
        assert (body.read(), body.end, body.total) == (layer.blob[:10], 10, layer.size)
    finally:
        body.close()


def test_a_bulk_route_answering_anything_but_the_range_is_declined(plain_registry, catalog):
    missing = "sha256:" + "0" * 64
    url = httpx.URL(f"{plain_registry.url}/v2/{catalog.gzip.repo}/blobs/{missing}")
    assert BulkReader(None, _TLS, 5.0, use_proxies=False).open(Route(url, ()), 0, 9) is None


@pytest.mark.parametrize(
    ("environment", "offered"),
    [
        ({}, True),
        ({"HTTPS_PROXY": "http://proxy.invalid:3128"}, False),
        ({"ALL_PROXY": "http://proxy.invalid:3128"}, False),
        ({"HTTPS_PROXY": "http://proxy.invalid:3128", "NO_PROXY": "registry.example"}, True),
    ],
)
def test_no_bulk_route_is_offered_through_a_proxy(monkeypatch, environment, offered):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    request = httpx.Request(
        "GET",
        "https://registry.example/v2/team/app/blobs/sha256:ab",
        headers={"Authorization": "Bearer t", "User-Agent": "layerpeek", "Cookie": "c"},
    )
    response = httpx.Response(206, request=request)
    route = BulkReader(None, _TLS, 5.0, use_proxies=True).route(response)
    assert (route is not None) == offered
    if route is not None:
        assert dict(route.headers) == {"authorization": "Bearer t", "user-agent": "layerpeek"}
    # A guarded client never uses a proxy, so its routes never depend on the environment.
    assert BulkReader(None, _TLS, 5.0, use_proxies=False).route(response) is not None
