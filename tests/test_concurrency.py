"""Many callers at once: a shared layer scan that one caller's cancel cannot break, and one
registry request (manifest, config, token, TOC) for all who ask at once.

Requests are counted where they arrive: at the fault proxy in front of the real registry, and
at the token server."""

from __future__ import annotations

import re

import anyio
import pytest
from mcp import Client

from fixtures.images import Member, Pusher, image_config, make_layer, seeded_bytes
from layerpeek.core.cache import AsyncCache
from layerpeek.core.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.server.app import create_server

pytestmark = pytest.mark.anyio

FILES = 3000
FILE_SIZE = 4000  # incompressible: a ~12 MB gzip blob, scanned in a dozen steps or more
SHARED_REPO = "test/shared-scan"


def layer_members(seed: int) -> list[Member]:
    return [
        Member(f"data/file-{i:05d}.bin", data=seeded_bytes(seed * 100_000 + i, FILE_SIZE))
        for i in range(FILES)
    ]


@pytest.fixture(scope="module")
def shared(plain_registry) -> dict[str, object]:
    """Fresh big gzip layers, one image each (tags ``s0``...): a test that needs a cold
    layer in a warm process takes its own."""
    layers = {}
    with Pusher(plain_registry.url) as pusher:
        for seed in range(3):
            layer = make_layer(layer_members(seed), "gzip")
            pusher.image(
                SHARED_REPO, [f"s{seed}"], [(layer.blob, layer.media_type)], image_config([layer])
            )
            layers[f"s{seed}"] = layer
    return layers


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


async def cancelled_among_others(
    peek: Layerpeek, image, step: int, whole: bool
) -> tuple[bool, list[list[str]]]:
    """One caller scanning the layer cancelled after its ``step``-th step while three others
    list it (whole, page by page, whole): whether the cancel landed mid-scan, and the
    others' listings."""
    listings: list[list[str]] = []
    landed: list[bool] = []

    async def cancelled() -> None:
        landed.append(await scan_cancelled_after(peek, image, step, whole))

    async def other(whole_listing: bool) -> None:
        listings.append(await list_all(peek, image, whole_listing))

    async with anyio.create_task_group() as group:
        group.start_soon(cancelled)  # first: it takes the scan, the others wait for it
        for whole_listing in (True, False, True):
            group.start_soon(other, whole_listing)
    return landed[0], listings


@pytest.mark.parametrize("whole", [True, False], ids=["inflating-ahead", "step-by-step"])
async def test_a_caller_cancelled_mid_scan_leaves_every_other_caller_the_whole_listing(
    layerpeek_env, fault_proxy, shared, tmp_path, whole
):
    layer = shared["s0"]
    expected = [e.path for e in layer.entries]
    ref = f"{fault_proxy.host}/{SHARED_REPO}:s0"
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
    layer = shared["s2"]
    reference = f"{fault_proxy.host}/{SHARED_REPO}:s2"
    last = [e.path for e in layer.entries if e.path.startswith("data/file-029")]
    for at in range(1, 13):
        # A cold server each time: its memory and its cache have never seen the layer.
        monkeypatch.setenv("LAYERPEEK_CACHE_DIR", str(tmp_path / f"cache-{at}"))
        async with Client(create_server(), mode=mode) as client:
            answer = await mcp_call_cancelled_among_others(client, reference, at)
        assert [e["path"] for e in answer["entries"]] == last, f"cancelled at progress {at}"
