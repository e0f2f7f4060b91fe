"""Hostile listings cost what their size says, off the event loop.

A deep path has one implicit directory per level: the merged view keeps a segment per level,
not a full path, so a 64 KiB path costs kilobytes, not gigabytes. Building the merged view
runs in worker threads, so a parallel call on the same loop goes on.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import anyio
import pytest

from fixtures.catalog import ImageSpec, PushedImage, push_spec
from fixtures.images import Member, Pusher, image_config, make_layer
from layerpeek.core.client import RegistryClient
from layerpeek.core.service import Layerpeek

DEEP_LEVELS = 32768  # "a/a/…/a": a 64 KiB name, 32767 implicit directories above it
TREE_PATHS, TREE_LEVELS = 100, 2000  # 100 names of ~4 KiB, 200,000 implicit directories
PEAK_LIMIT = 400 << 20  # the old view of DEEP took 2.2 GB; the interpreter alone ~60 MB


@dataclass(frozen=True)
class BoundImages:
    deep: PushedImage  # one layer, one PAX path of 64 KiB
    tree: PushedImage  # one layer, TREE_PATHS deep paths under distinct top directories


def _image(pusher: Pusher, repo: str, members: list[Member]) -> PushedImage:
    layers = (make_layer(members, format="pax"),)
    return push_spec(pusher, ImageSpec(repo, ("latest",), layers, image_config(layers)))


@pytest.fixture(scope="module")
def bound_images(plain_registry) -> BoundImages:
    chain = "/".join(["a"] * TREE_LEVELS)
    with Pusher(plain_registry.url) as pusher:
        return BoundImages(
            deep=_image(pusher, "bounds/deep", [Member("/".join(["a"] * DEEP_LEVELS))]),
            tree=_image(
                pusher,
                "bounds/tree",
                [Member(f"b{i}/{chain}/f", data=b"x") for i in range(TREE_PATHS)],
            ),
        )


@pytest.fixture
async def peek(layerpeek_env):
    async with RegistryClient() as client, Layerpeek(client) as service:
        yield service


# -- memory linear in the listing ----------------------------------------------------------

PEAK_SCRIPT = """
import asyncio, resource, sys
from layerpeek.core.client import RegistryClient
from layerpeek.core.service import Layerpeek

async def main(ref: str, deepest: str) -> None:
    async with RegistryClient() as client, Layerpeek(client) as peek:
        image = await peek.resolve(ref)
        page = await peek.merged_listing(image, limit=3)
        trace = await peek.trace(image, deepest)
        print(page.total, [len(e.path) for e in page.entries], trace.exists)

asyncio.run(main(sys.argv[1], sys.argv[2]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10)
"""


def test_a_64_kib_deep_path_merges_in_linear_memory(layerpeek_env, plain_registry, bound_images):
    """A page of the merged listing and a trace over a 200-byte layer whose one name is
    64 KiB of ``a/``, with the peak RSS of the process that gave them."""
    deepest = "/".join(["a"] * DEEP_LEVELS)
    run = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, bound_images.deep.ref(plain_registry.host), deepest],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    answer, peak = run.stdout.splitlines()
    assert answer == f"{DEEP_LEVELS} [1, 3, 5] True"
    assert int(peak) < PEAK_LIMIT


# -- the event loop goes on ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "heavy",
    ["merged listing"],
)
async def test_a_parallel_call_finishes_while_a_big_tree_is_merged(
    peek, plain_registry, bound_images, catalog, heavy
):
    """200,000 implicit directories from 100 names: the merged view takes a while in worker
    threads, and an inspect of another image started at the same moment finishes first.
    With that work on the loop, the inspect waits."""
    image = await peek.resolve(bound_images.tree.ref(plain_registry.host))
    listed = [e async for e in peek.entries(image, whole=True)]  # the index is cached now
    assert len(listed) == TREE_PATHS
    work = {
        "merged listing": lambda: peek.merged_listing(image, limit=10),
    }[heavy]
    finished: list[str] = []

    async def big() -> None:
        await work()
        finished.append("heavy")

    async def small() -> None:
        await peek.inspect(catalog.history.ref(plain_registry.host))
        finished.append("inspect")

    async with anyio.create_task_group() as group:
        group.start_soon(big)
        group.start_soon(small)
    assert finished == ["inspect", "heavy"]
