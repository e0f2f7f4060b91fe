"""One measured step of the benchmark, run in its own process so time and peak RSS are its own.

``python bench/measure.py STEP REF [PATH]`` prints one JSON object: ``seconds`` for the step
itself (imports and process start excluded), ``rss_mb`` (peak resident set of the process),
``loop_lag_ms`` (the longest the event loop was kept from a 5 ms timer) and step details.
The environment (``LAYERPEEK_CACHE_DIR``, ``LAYERPEEK_PLAIN_HTTP``) is set by ``run.py``.
"""

from __future__ import annotations

import json
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx

from layerpeek.core.layers.buffers import OutputPool
from layerpeek.core.layers.checkpoints import OUTPUT, CheckpointInflater
from layerpeek.core.layers.index.builder import SCAN_BATCH
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.runtime import tuned_process
from layerpeek.core.service import Layerpeek

TICK = 0.005


async def _watch(lag: list[float]) -> None:
    """Record how late a 5 ms timer fires: the longest stretch the loop was blocked."""
    while True:
        started = time.perf_counter()
        await anyio.sleep(TICK)
        lag[0] = max(lag[0], time.perf_counter() - started - TICK)


async def first_page(peek: Layerpeek, ref: str, _: str) -> dict[str, object]:
    image = await peek.resolve(ref)
    page = await peek.list_page(image, 0, limit=100)
    return {"entries": len(page.entries), "complete": page.complete}


async def full_listing(peek: Layerpeek, ref: str, _: str) -> dict[str, object]:
    image = await peek.resolve(ref)
    count = 0
    async for _entry in peek.entries(image, 0, whole=True):
        count += 1
    return {"entries": count}


async def cat(peek: Layerpeek, ref: str, path: str) -> dict[str, object]:
    image = await peek.resolve(ref)
    size = 0
    async for chunk in peek.read_file(image, path, 0):
        size += len(chunk)
    return {"bytes": size}


async def naive(peek: Layerpeek, ref: str, _: str) -> dict[str, object]:
    """The naive way: download the whole blob to a file, then list it with tarfile."""
    image = await peek.resolve(ref)
    digest = image.manifest.layers[0].digest
    url = peek.client.url(image.reference, f"blobs/{digest}")
    with tempfile.TemporaryFile() as spool:
        async with httpx.AsyncClient() as http, http.stream("GET", url) as response:
            async for chunk in response.aiter_raw():
                spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r|gz") as tar:
            count = sum(1 for _ in tar)
    return {"entries": count}


async def inflate_alone(_: Layerpeek, __: str, path: str) -> dict[str, object]:
    """The scan's own inflater (``CheckpointInflater``, zlib-ng into the scan's buffers,
    checkpoints and all) over the layer's local file, and nothing else: no network, no tar
    scan, no index. Under a full listing of that layer this is the floor; it runs in a
    worker thread, as a listing's inflater does."""

    def inflate() -> int:
        pool = OutputPool(OUTPUT)
        inflater, produced = CheckpointInflater(pool=pool), 0
        with open(path, "rb") as blob:
            while batch := blob.read(SCAN_BATCH):
                for piece in inflater.feed(batch):
                    produced += len(piece)
                    pool.give_back([piece])
        inflater.finish()
        return produced

    return {"bytes": await anyio.to_thread.run_sync(inflate)}


STEPS: dict[str, Callable[[Layerpeek, str, str], Awaitable[dict[str, object]]]] = {
    "inflate-alone": inflate_alone,
    "first-page": first_page,
    "full-listing": full_listing,
    "cat": cat,
    "naive": naive,
}


def _peak_rss_mb() -> float:
    """VmHWM: the peak RSS of this process image (ru_maxrss would include the parent's,
    inherited through fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(step: str, ref: str, path: str) -> None:
    lag = [0.0]
    async with RegistryClient() as client, anyio.create_task_group() as group:
        group.start_soon(_watch, lag)
        peek = Layerpeek(client)
        started = time.perf_counter()
        details = await STEPS[step](peek, ref, path)
        seconds = time.perf_counter() - started
        await anyio.sleep(2 * TICK)  # let the watcher see a stretch that blocked until the end
        group.cancel_scope.cancel()
    rss = _peak_rss_mb()
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "loop_lag_ms": lag[0] * 1000, **details}))


if __name__ == "__main__":
    with tuned_process():  # as the front ends run
        anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
