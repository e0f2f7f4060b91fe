"""The blob reader against the real registry behind the fault proxy: growing Range windows,
resume after cut connections and 5xx, a registry that ignores Range, bounded attempts.
Bytes are counted where the proxy sends them, not by the client."""

from __future__ import annotations

import re

import pytest

from layerpeek.core.errors import RegistryUnreachable
from layerpeek.core.layers.reader import ATTEMPTS, FIRST_WINDOW, GROWTH, BlobReader
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.reference import parse_reference


def blob_path(digest: str) -> str:
    return rf"/blobs/{re.escape(digest)}$"


async def read_all(host: str, image, digest: str, **options) -> bytes:
    async with RegistryClient() as client:
        reader = BlobReader(client, parse_reference(image.ref(host)), digest, **options)
        return b"".join([chunk async for chunk in reader.chunks()])


def ranges(proxy, digest: str) -> list[str | None]:
    return [r.range for r in proxy.requests if re.search(blob_path(digest), r.path)]


async def test_windows_start_small_and_grow(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    data = await read_all(fault_proxy.host, catalog.gzip, layer.digest, end=layer.size)
    assert data == layer.blob
    second = FIRST_WINDOW * GROWTH
    assert ranges(fault_proxy, layer.digest)[:2] == [
        f"bytes=0-{FIRST_WINDOW - 1}",
        f"bytes={FIRST_WINDOW}-{FIRST_WINDOW + second - 1}",
    ]
    assert fault_proxy.body_bytes(blob_path(layer.digest)) == layer.size


async def test_size_is_learnt_from_the_first_range(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    assert await read_all(fault_proxy.host, catalog.gzip, layer.digest) == layer.blob


async def test_a_cut_connection_resumes_from_the_next_byte(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    fault_proxy.cut_after(blob_path(layer.digest), 100_000, times=3)
    data = await read_all(fault_proxy.host, catalog.gzip, layer.digest, end=layer.size)
    assert data == layer.blob
    starts = [int(r.partition("=")[2].partition("-")[0]) for r in ranges(fault_proxy, layer.digest)]
    assert starts[:4] == [0, 100_000, 200_000, 300_000]
    # Every byte crossed the wire once: nothing already received was asked for again.
    assert fault_proxy.body_bytes(blob_path(layer.digest)) == layer.size


async def test_a_503_between_windows_is_retried(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    async with RegistryClient() as client:
        ref = parse_reference(catalog.gzip.ref(fault_proxy.host))
        reader = BlobReader(client, ref, layer.digest, end=layer.size)
        first = await reader.read()
        fault_proxy.inject(blob_path(layer.digest), 503, {"Retry-After": "0"})
        rest = b"".join([chunk async for chunk in reader.chunks()])
    assert first + rest == layer.blob
    statuses = [r.status for r in fault_proxy.requests if layer.digest in r.path]
    assert statuses[:3] == [206, 503, 206]


async def test_a_registry_that_ignores_range_is_streamed(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    headers = {"Content-Type": "application/octet-stream"}
    fault_proxy.inject(blob_path(layer.digest), 200, headers, layer.blob)
    data = await read_all(fault_proxy.host, catalog.gzip, layer.digest, start=1000)
    assert data == layer.blob[1000:]
    assert len(ranges(fault_proxy, layer.digest)) == 1


async def test_drops_without_progress_give_up_after_bounded_attempts(
    layerpeek_env, fault_proxy, catalog
):
    layer = catalog.gzip.layers[1]
    fault_proxy.cut_after(blob_path(layer.digest), 0, times=50)
    with pytest.raises(RegistryUnreachable, match=rf"dropped {ATTEMPTS} times.*{layer.digest}"):
        await read_all(fault_proxy.host, catalog.gzip, layer.digest, end=layer.size)
    assert len(ranges(fault_proxy, layer.digest)) == ATTEMPTS


async def test_progress_reports_every_byte_delivered(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    seen: list[int] = []
    await read_all(fault_proxy.host, catalog.gzip, layer.digest, on_bytes=seen.append)
    assert seen == sorted(seen) and seen[-1] == layer.size


async def test_a_slice_costs_only_its_bytes(layerpeek_env, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    data = await read_all(
        fault_proxy.host, catalog.gzip, layer.digest, start=5000, end=9000, window=4000
    )
    assert data == layer.blob[5000:9000]
    assert ranges(fault_proxy, layer.digest) == ["bytes=5000-8999"]
    assert fault_proxy.body_bytes(blob_path(layer.digest)) == 4000
