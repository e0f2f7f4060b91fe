"""Deadlines and fairness against a registry that answers slowly on purpose: a small document
has a total deadline (not one per read), a layer stream a minimum rate (in httpx and in bulk
windows), each registry host a share of the connections, and each bot user and MCP caller a
few calls running at once. Nothing here measures time: each test asserts which error came, or
that one answer arrived while other calls were still waiting."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator

import anyio
import anyio.to_thread
import pytest

from fixtures.hostile import OCI_MANIFEST, HostileRegistry, sha256
from layerpeek.core.client import RegistryClient
from layerpeek.core.errors import RegistryTooSlow
from layerpeek.core.layers.reader import FIRST_WINDOW, BlobReader
from layerpeek.core.reference import parse_reference
from layerpeek.core.settings import Settings

pytestmark = pytest.mark.anyio

SLOW = "slow/app"
DRIP = 0.02
"""Seconds between two bytes of a dripped body: 50 bytes/s."""


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with HostileRegistry() as registry:
        yield registry


def settings(tmp_path, **values) -> Settings:
    """The client's settings for a test: plain HTTP to 127.0.0.1, a cache of its own."""
    return Settings(plain_http=("127.0.0.1",), cache_dir=tmp_path / "cache", **values)


def manifest_bytes() -> bytes:
    config = sha256(b"{}")
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config},
            "layers": [],
        }
    ).encode()


class Arrivals:
    """Counts the slow bodies a hostile route has started sending; tests wait on the count."""

    def __init__(self) -> None:
        self._started = threading.Semaphore(0)

    def endless(self) -> Callable[[], Iterable[bytes]]:
        """A body for a Route: counts its start, then one byte per pause for minutes."""

        def body() -> Iterable[bytes]:
            self._started.release()
            for _ in range(10_000):
                yield b" "

        return body

    async def wait_for(self, count: int) -> None:
        for _ in range(count):
            await anyio.to_thread.run_sync(self._started.acquire)


def endless_manifest(hostile: HostileRegistry) -> Arrivals:
    """Every manifest of ``SLOW`` drips for minutes; returns what counts their starts."""
    arrivals = Arrivals()
    hostile.route(
        "GET",
        rf"/v2/{SLOW}/manifests/.+",
        headers={"Content-Type": OCI_MANIFEST},
        body=arrivals.endless(),
        drip_seconds=DRIP,
    )
    return arrivals


# -- a total deadline for small documents ------------------------------------------------------


async def test_a_manifest_dripped_slowly_fails_at_its_total_deadline(hostile, tmp_path):
    hostile.route(
        "GET",
        rf"/v2/{SLOW}/manifests/1\.0",
        headers={"Content-Type": OCI_MANIFEST},
        body=manifest_bytes(),
        drip_seconds=DRIP,  # ~6 s for the whole manifest, each byte well within the read timeout
    )
    async with RegistryClient(settings(tmp_path, deadline=0.5)) as client:
        with pytest.raises(RegistryTooSlow) as caught:
            await client.get_manifest(parse_reference(f"{hostile.host}/{SLOW}:1.0"))
    message = str(caught.value)
    assert message.startswith(
        f"registry {hostile.host} did not send all of manifest {hostile.host}/{SLOW}:1.0 "
        "within 0.5 s (LAYERPEEK_DEADLINE): "
    )
    assert "\n" not in message


async def test_a_token_dripped_slowly_names_the_token_server(hostile, tmp_path, layerpeek_env):
    realm = f"{hostile.url}/token"
    challenge = f'Bearer realm="{realm}",service="hostile",scope="repository:{SLOW}:pull"'
    hostile.route(
        "GET",
        rf"/v2/{SLOW}/manifests/1\.0",
        status=401,
        headers={"WWW-Authenticate": challenge, "Content-Type": "application/json"},
        body=b'{"errors": [{"code": "UNAUTHORIZED"}]}',
    )
    token = json.dumps({"token": "t" * 200}).encode()
    hostile.route(
        "GET", "/token", headers={"Content-Type": "application/json"}, body=token, drip_seconds=DRIP
    )
    async with RegistryClient(settings(tmp_path, deadline=0.5)) as client:
        with pytest.raises(RegistryTooSlow) as caught:
            await client.get_manifest(parse_reference(f"{hostile.host}/{SLOW}:1.0"))
    assert str(caught.value) == (
        f"token server {realm} (for registry {hostile.host}) did not send a token for "
        f"manifest {hostile.host}/{SLOW}:1.0 within 0.5 s (LAYERPEEK_DEADLINE)"
    )


# -- a minimum rate for layer streams ----------------------------------------------------------


def rate_error(hostile: HostileRegistry, digest: str) -> str:
    return (
        f"registry {hostile.host} sent blob {digest} too slowly: less than 1.0 KiB/s on "
        "average over 0.3 s (LAYERPEEK_MIN_RATE, LAYERPEEK_RATE_WINDOW)"
    )


async def test_a_layer_dripped_below_the_minimum_rate_fails(hostile, tmp_path):
    data = bytes(range(256)) * 3  # 768 bytes at 50 bytes/s: ~15 s to the end
    digest = sha256(data)
    hostile.route("GET", rf"/v2/{SLOW}/blobs/{digest}", body=data, drip_seconds=DRIP)
    ref = parse_reference(f"{hostile.host}/{SLOW}:1.0")
    async with RegistryClient(settings(tmp_path, min_rate=1024, rate_window=0.3)) as client:
        reader = BlobReader(client, ref, digest)
        with pytest.raises(RegistryTooSlow) as caught:
            async for _ in reader.chunks():
                pass
    assert str(caught.value) == rate_error(hostile, digest)
    assert reader.requests == 1 and reader.position < len(data)


async def test_a_bulk_window_dripped_below_the_minimum_rate_fails(hostile, tmp_path):
    # The first window comes at once through httpx; the next, on the bulk route, drips.
    data = bytes(range(256)) * (FIRST_WINDOW // 256) + b"x" * 768
    digest = sha256(data)
    hostile.blob(SLOW, digest, data, drip_seconds=DRIP, drip_from=FIRST_WINDOW)
    ref = parse_reference(f"{hostile.host}/{SLOW}:1.0")
    async with RegistryClient(settings(tmp_path, min_rate=1024, rate_window=0.3)) as client:
        reader = BlobReader(client, ref, digest)
        with pytest.raises(RegistryTooSlow) as caught:
            async for _ in reader.chunks():
                pass
    assert str(caught.value) == rate_error(hostile, digest)
    assert reader.bulk_requests == 1 and FIRST_WINDOW <= reader.position < len(data)


# -- connections per registry host -------------------------------------------------------------


async def test_slow_requests_to_one_registry_leave_connections_for_another(
    hostile, tmp_path, plain_registry, catalog
):
    """More slow requests than the whole connection pool holds (100) wait on one registry;
    a request to another registry is answered while every one of them is still waiting."""
    limit = 4
    arrivals = endless_manifest(hostile)
    slow = parse_reference(f"{hostile.host}/{SLOW}:1.0")
    finished: list[str] = []
    # A short timeout: a request that waits for a pooled connection gives up quickly.
    options = settings(tmp_path, host_connections=limit, timeout=2.0)
    async with RegistryClient(options) as client, anyio.create_task_group() as waiting:

        async def fetch_slow() -> None:
            await client.get_manifest(slow)
            finished.append("slow")

        for _ in range(105):
            waiting.start_soon(fetch_slow)
        await arrivals.wait_for(limit)
        answer = await client.get_manifest(parse_reference(catalog.gzip.ref(plain_registry.host)))
        assert answer.digest == catalog.gzip.digest
        assert finished == []
        assert len(hostile.requests) == limit  # the others wait their turn, unsent
        waiting.cancel_scope.cancel()
