"""Many callers at once: a shared layer scan that one caller's cancel cannot break, and one
registry request (manifest, config, token, TOC) for all who ask at once.

Requests are counted where they arrive: at the fault proxy in front of the real registry, and
at the token server."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import replace

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from mcp import Client

from fixtures.hostile import HostileRegistry, Route
from fixtures.images import Member, Pusher, image_config, make_layer, seeded_bytes
from fixtures.toc_images import make_estargz, push_toc_image
from layerpeek.core.cache.sqlite import AsyncCache
from layerpeek.core.errors import LayerpeekError, TruncatedLayer
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings
from layerpeek.server.app import create_server

FILES = 3000
FILE_SIZE = 4000  # incompressible: a ~12 MB gzip blob, scanned in a dozen steps or more
SHARED_REPO = "test/shared-scan"
TOC_REPO = "test/shared-toc"
HELD_REPO = "held/app"


def layer_members(seed: int) -> list[Member]:
    return [
        Member(f"data/file-{i:05d}.bin", data=seeded_bytes(seed * 100_000 + i, FILE_SIZE))
        for i in range(FILES)
    ]


@pytest.fixture(scope="module")
def shared(plain_registry) -> dict[str, object]:
    """A big gzip layer (``big``) and the same cut at three quarters (``cut``), one image
    each, tagged so. Every test starts a process state of its own (a ``Layerpeek``, a
    cache, a server), cold for them. Their files' data is not kept: the test process's
    peak memory counts in the RSS a subprocess measures (``test_fs_bounds``)."""
    with Pusher(plain_registry.url) as pusher:
        big = replace(make_layer(layer_members(0), "gzip"), files={})
        cut = replace(big, blob=big.blob[: big.size * 3 // 4])
        for tag, layer in (("big", big), ("cut", cut)):
            blobs = [(layer.blob, layer.media_type)]
            pusher.image(SHARED_REPO, [tag], blobs, image_config([layer]))
    return {"big": big, "cut": cut}


def blob(layer) -> str:
    return rf"/blobs/{re.escape(layer.digest)}$"


# -- 1. cancellation is local ------------------------------------------------------------------


async def list_all(peek: Layerpeek, image, whole: bool) -> list[str]:
    return [e.path async for e in peek.entries(image, 0, whole=whole)]


async def scan_cancelled_after(peek: Layerpeek, image, step: int, whole: bool) -> bool:
    """Scan the whole layer and cancel this caller right after its ``step``-th step; True
    when the cancellation landed before the scan was done."""
    steps = 0
    descriptor = image.manifest.layers[0]
    with anyio.CancelScope() as scope:

        def on_scan(received: int, entries: int) -> None:
            nonlocal steps
            steps += 1
            if steps == step:
                scope.cancel()

        await peek.indexes.view(image.reference, descriptor, 10**9, on_scan, whole=whole)
    return scope.cancelled_caught


async def scan_all(peek: Layerpeek, image, whole: bool) -> list[str]:
    """The layer scanned to its end in one call, as a listing does that wants it all."""
    descriptor = image.manifest.layers[0]
    view = await peek.indexes.view(image.reference, descriptor, None, whole=whole)
    return [e.path for e in view.entries]


async def cancelled_among_others(
    peek: Layerpeek, image, step: int, whole: bool
) -> tuple[bool, list[list[str]]]:
    """One caller scanning the layer cancelled after its ``step``-th step while three others
    want it too (two waiting for the whole scan, one listing it step by step): whether the
    cancel landed mid-scan, and the others' listings."""
    listings: list[list[str]] = []
    landed: list[bool] = []

    async def cancelled() -> None:
        landed.append(await scan_cancelled_after(peek, image, step, whole))

    async def other(call) -> None:
        listings.append(await call(peek, image, whole))

    async with anyio.create_task_group() as group:
        group.start_soon(cancelled)  # first: it takes the scan, the others wait for it
        for call in (scan_all, list_all, scan_all):
            group.start_soon(other, call)
    return landed[0], listings


@pytest.mark.parametrize("whole", [True, False], ids=["inflating-ahead", "step-by-step"])
async def test_a_caller_cancelled_mid_scan_leaves_every_other_caller_the_whole_listing(
    layerpeek_env, fault_proxy, shared, tmp_path, whole
):
    layer = shared["big"]
    expected = [e.path for e in layer.entries]
    ref = f"{fault_proxy.host}/{SHARED_REPO}:big"
    cancelled_mid_scan = 0
    async with RegistryClient() as client:
        for step in range(1, 25):  # past the last step of the scan: every point is tried
            fault_proxy.reset()
            async with Layerpeek(client, cache=AsyncCache(tmp_path / f"cache-{step}")) as peek:
                image = await peek.resolve(ref)
                landed, listings = await cancelled_among_others(peek, image, step, whole)
            assert listings == [expected] * 3, f"cancelled after step {step}"
            cancelled_mid_scan += landed
            # The scan went on from where the cancel left it: no second read of the blob.
            assert fault_proxy.body_bytes(blob(layer)) < 2 * layer.size
    assert cancelled_mid_scan >= 10


async def test_a_damaged_layer_fails_every_caller_of_its_scan_with_the_same_error(
    layerpeek_env, fault_proxy, shared
):
    layer = shared["cut"]
    async with RegistryClient() as client, Layerpeek(client) as peek:
        image = await peek.resolve(f"{fault_proxy.host}/{SHARED_REPO}:cut")

        async def scan() -> str:
            # A listing answers with what was read and the damage as its problem.
            view = await peek.indexes.view(image.reference, image.manifest.layers[0], None)
            assert isinstance(view.problem, TruncatedLayer) and not view.complete
            return str(view.problem)

        errors = await at_once(4, scan)
    assert len(set(errors)) == 1 and errors[0].startswith("gzip stream ends early after ")
    assert fault_proxy.body_bytes(blob(layer)) == layer.size  # one scan found it


@pytest.fixture
def allowed(layerpeek_env, monkeypatch, tmp_path) -> None:
    """The MCP server may reach the local registries (every port of 127.0.0.1)."""
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.chdir(tmp_path)


async def mcp_call_cancelled_among_others(client: Client, reference: str, at: int) -> dict:
    """Two calls listing the last 100 files of one layer (each page reads the layer to its
    end), one cancelled by the client at its ``at``-th progress notification; the other's
    answer."""
    answers: list[dict] = []
    arguments = {"reference": reference, "glob": "data/file-029*", "limit": 200}

    async def cancelled() -> None:
        with anyio.CancelScope() as scope:
            seen = 0

            async def cancel(progress, total, message) -> None:
                nonlocal seen
                seen += 1
                if seen == at:
                    scope.cancel()

            await client.call_tool("list_files", arguments, progress_callback=cancel)

    async def other() -> None:
        result = await client.call_tool("list_files", arguments)
        assert not result.is_error, result.content[0].text
        answers.append(result.structured_content)

    async with anyio.create_task_group() as group:
        group.start_soon(cancelled)
        group.start_soon(other)
    return answers[0]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_mcp_client_cancelling_one_call_leaves_the_other_call_whole(
    allowed, monkeypatch, tmp_path, fault_proxy, shared, mode
):
    layer = shared["big"]
    reference = f"{fault_proxy.host}/{SHARED_REPO}:big"
    last = [e.path for e in layer.entries if e.path.startswith("data/file-029")]
    for at in range(1, 13):
        # A cold server each time: its memory and its cache have never seen the layer.
        monkeypatch.setenv("LAYERPEEK_CACHE_DIR", str(tmp_path / f"cache-{at}"))
        async with Client(create_server(), mode=mode) as client:
            answer = await mcp_call_cancelled_among_others(client, reference, at)
        assert [e["path"] for e in answer["entries"]] == last, f"cancelled at progress {at}"


# -- 3. one registry request for all who ask at once -------------------------------------------

CALLERS = 10


def counted(proxy, method: str, pattern: str) -> int:
    """Requests of ``method`` whose target matches ``pattern`` that the proxy answered."""
    return sum(
        r.method == method and re.search(pattern, r.path) is not None for r in proxy.requests
    )


async def at_once(count: int, call) -> list:
    """``call()``'s answers, ``count`` of them started together."""
    answers: list = []

    async def one() -> None:
        answers.append(await call())

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return answers


async def test_cold_inspects_at_once_make_one_manifest_check_fetch_and_config_get(
    layerpeek_env, fault_proxy, catalog
):
    image = catalog.gzip
    async with RegistryClient() as client, Layerpeek(client) as peek:
        reports = await at_once(CALLERS, lambda: peek.inspect(image.ref(fault_proxy.host)))
        assert {r.digest for r in reports} == {image.digest}
        manifests = rf"/v2/{image.repo}/manifests/"
        assert counted(fault_proxy, "HEAD", manifests) == 1
        assert counted(fault_proxy, "GET", manifests) == 1
        assert counted(fault_proxy, "GET", rf"/blobs/{image.config_digest}$") == 1
        # A call after the flight asks the registry again: every answer starts with a check.
        await peek.inspect(image.ref(fault_proxy.host))
        assert counted(fault_proxy, "HEAD", manifests) == 2
        assert counted(fault_proxy, "GET", manifests) == 1  # the body is the cached one


async def test_cold_inspects_of_a_multi_platform_tag_at_once_fetch_each_manifest_once(
    layerpeek_env, fault_proxy, catalog
):
    index = catalog.multi
    async with RegistryClient() as client, Layerpeek(client) as peek:
        reports = await at_once(CALLERS, lambda: peek.inspect(index.ref(fault_proxy.host)))
        assert len({r.digest for r in reports}) == 1
    manifests = rf"/v2/{index.repo}/manifests/"
    assert counted(fault_proxy, "HEAD", manifests) == 1
    assert counted(fault_proxy, "GET", manifests) == 2  # the index, then the amd64 manifest
    assert counted(fault_proxy, "GET", r"/blobs/") == 1  # the amd64 config


async def test_a_missing_tag_asked_at_once_is_one_check_and_everyones_error(
    layerpeek_env, fault_proxy, catalog
):
    ref = f"{fault_proxy.host}/{catalog.gzip.repo}:no-such-tag"
    async with RegistryClient() as client, Layerpeek(client) as peek:

        async def inspect() -> str:
            with pytest.raises(LayerpeekError) as caught:
                await peek.inspect(ref)
            return f"{type(caught.value).__name__}: {caught.value}"

        errors = await at_once(CALLERS, inspect)
    assert len(set(errors)) == 1 and "no-such-tag" in errors[0]
    manifests = rf"/v2/{catalog.gzip.repo}/manifests/"
    assert counted(fault_proxy, "HEAD", manifests) == 1
    assert counted(fault_proxy, "GET", manifests) == 1  # the registry's own words


async def test_cold_calls_at_once_fetch_one_token(peek, token_registry, token_server, catalog):
    # Ten tags of one repository: ten manifest checks, each answered 401 at first, all for
    # the same token (registry, realm, service and scope).
    image = catalog.tags
    refs = iter(f"{token_registry.host}/{image.repo}:{tag}" for tag in image.tags[:CALLERS])
    token_server.reset()
    reports = await at_once(CALLERS, lambda: peek.inspect(next(refs)))
    assert {r.digest for r in reports} == {image.digest}
    assert [(r.scopes, r.status) for r in token_server.requests] == [
        ((f"repository:{image.repo}:pull",), 200)
    ]


@pytest.fixture(scope="module")
def toc_image(plain_registry) -> object:
    """An eStargz image: its listing comes from the TOC, read by two small ranges."""
    layer = make_estargz(layer_members(9)[:200], chunk_size=16 << 10)
    with Pusher(plain_registry.url) as pusher:
        push_toc_image(pusher, TOC_REPO, "latest", layer)
    return layer


async def test_cold_listings_of_a_toc_layer_at_once_read_the_toc_once(
    layerpeek_env, fault_proxy, toc_image, tmp_path
):
    ref = f"{fault_proxy.host}/{TOC_REPO}:latest"
    layer_blob = blob(toc_image.layer)
    async with RegistryClient() as client:
        async with Layerpeek(client, cache=AsyncCache(tmp_path / "alone")) as peek:
            image = await peek.resolve(ref)
            alone = await list_all(peek, image, False)
        one_read = counted(fault_proxy, "GET", layer_blob)
        assert one_read >= 1
        fault_proxy.reset()
        async with Layerpeek(client, cache=AsyncCache(tmp_path / "together")) as peek:
            image = await peek.resolve(ref)
            listings = await at_once(CALLERS, lambda: list_all(peek, image, False))
    assert listings == [alone] * CALLERS
    assert counted(fault_proxy, "GET", layer_blob) == one_read


async def index_sets(redis_url: str) -> int:
    """SET commands Redis has run so far."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_set", {}).get("calls", 0))


async def test_callers_of_one_scan_store_its_index_once(
    layerpeek_env, monkeypatch, fault_proxy, shared, redis_server
):
    redis_server.flush()
    monkeypatch.setenv("LAYERPEEK_CACHE_URL", redis_server.url)
    layer = shared["big"]
    async with RegistryClient() as client, Layerpeek(client) as peek:
        image = await peek.resolve(f"{fault_proxy.host}/{SHARED_REPO}:big")
        before = await index_sets(redis_server.url)
        listings = await at_once(CALLERS, lambda: list_all(peek, image, True))
        assert listings == [[e.path for e in layer.entries]] * CALLERS
        # One SET of the index, and one SET NX of the layer's lease (``cache_redis``).
        assert await index_sets(redis_server.url) - before == 2
    assert fault_proxy.body_bytes(blob(layer)) == layer.size


async def test_a_caller_cancelled_mid_request_hands_the_request_to_those_waiting(
    layerpeek_env, tmp_path
):
    with HostileRegistry() as hostile:
        digest = hostile.image(HELD_REPO, "1.0", [])
        held = HeldOnce(hostile, f"/v2/{HELD_REPO}/manifests/{digest}")
        ref = f"{hostile.host}/{HELD_REPO}:1.0"
        leader = anyio.CancelScope()
        answers: list[str] = []
        async with (
            RegistryClient(Settings(plain_http=("127.0.0.1",))) as client,
            Layerpeek(client, cache=AsyncCache(tmp_path / "cache")) as peek,
        ):

            async def lead() -> None:
                with leader:
                    await peek.resolve(ref)

            async def wait() -> None:
                answers.append((await peek.resolve(ref)).digest)

            async with anyio.create_task_group() as group:
                group.start_soon(lead)
                await anyio.to_thread.run_sync(held.arrived.acquire)
                for _ in range(CALLERS - 1):
                    group.start_soon(wait)
                await wait_all_tasks_blocked()  # the others wait for the leader's request
                leader.cancel()
        assert leader.cancelled_caught
        assert answers == [digest] * (CALLERS - 1)
        # The request the leader left was made again once, by one of those waiting.
        asked = [r for r in hostile.requests if "/manifests/" in r.path]
        assert [r.method for r in asked] == ["HEAD", "GET", "HEAD", "GET"]


class HeldOnce:
    """The GET of ``path`` answered the first time by a body that never ends (its arrival
    counted in ``arrived``), then as before."""

    def __init__(self, hostile: HostileRegistry, path: str) -> None:
        self.arrived = threading.Semaphore(0)
        normal = hostile.match("GET", path)
        assert normal is not None and isinstance(normal.body, bytes)
        self._body = normal.body
        self._calls = 0
        route = Route("GET", re.compile(re.escape(path)), headers=dict(normal.headers), body=self)
        route.drip_seconds = 0.01
        hostile.routes.insert(0, route)

    def __call__(self) -> Iterable[bytes]:
        self._calls += 1
        self.arrived.release()
        if self._calls == 1:
            return (b" " for _ in range(100_000))
        return [self._body]
