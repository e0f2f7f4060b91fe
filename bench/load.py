"""The load benchmark: many MCP callers at once against one real ``layerpeek-mcp --http``.

    python bench/load.py [--entries N] [--callers N] [--pages N] [--work DIR]

Builds a deterministic gzip layer of ``--entries`` small text-like files and directories and
a second, different small image, starts Debian's ``docker-registry`` (the test fixtures'
launcher) behind the fixtures' counting proxy, and pushes both. Then it starts
``layerpeek-mcp --http`` as a subprocess with a fresh cache directory and drives it with the
MCP SDK's own client over streamable HTTP, one client per simulated caller:

- baselines, on a server of their own: one cold ``list_files`` of the big layer, one merged
  page, and an idle ``inspect_image`` of the small image every 100 ms;
- (a) ``--callers`` concurrent cold ``list_files`` of the same big layer (a filter that makes
  each one read the whole layer), two of them cancelled part-way;
- (b) ``--callers`` concurrent callers each paging through merged pages of the big image,
  (c) while an unrelated ``inspect_image`` of the small image runs every 100 ms (from a
  process of its own, so the load's clients do not delay its clock);
- (d) one caller paging through every merged page with the cursor;
- (f) two servers sharing one cache directory asking for the same merged page at once.

It reports blob bytes per distinct layer at the proxy, the latency of the unrelated call
under load against idle, the servers' peak RSS (VmHWM from ``/proc/PID/status``: the baseline
server's after its single calls, the load server's after the load) and the time to page
through the merged view, each against its target. No figure is asserted anywhere: this
prints, a person reads.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.images import (  # noqa: E402
    OCI_LAYER_GZIP,
    Member,
    Pusher,
    image_config,
    make_layer,
    sha256_digest,
)
from fixtures.proxy import FaultProxy  # noqa: E402
from fixtures.registry import RegistryProcess  # noqa: E402
from fixtures.tools import terminate  # noqa: E402

BIG_REPO, SMALL_REPO = "load/big", "load/small"
MTIME = 1_700_000_000
PER_DIR = 50
"""One directory entry, then 49 files in it."""
PAGE = 200
"""The largest page list_files allows."""
INSPECT_EVERY = 0.1
CANCEL_AFTER = (0.4, 1.2)
"""When the cancelled callers of (a) go away, in seconds after the calls start."""
TARGETS = {"bytes": 1.0, "p99_ms": 250.0, "rss_ratio": 2.0, "paging_s": 15.0}


# -- the images ------------------------------------------------------------------------------


class _Hashing:
    """A write-only file that hashes what passes through: the layer's diff_id as it is built."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.sha = out, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.out.write(data)


def wide_entries(entries: int) -> Iterator[tuple[str, bytes | None]]:
    """Deterministic members, (path, data) for files and (path, None) for directories: many
    small text-like files, as in a distribution's /usr."""
    rng = random.Random(20261206)
    words = [
        bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 10)))
        for _ in range(2000)
    ]
    corpus = b" ".join(rng.choice(words) for _ in range(400_000))
    for i in range(entries):
        folder = f"usr/share/d{i // PER_DIR:05d}"
        if i % PER_DIR == 0:
            yield folder, None
            continue
        size = rng.randint(100, 8000)
        start = rng.randrange(len(corpus) - size)
        yield f"{folder}/f{i:06d}.txt", corpus[start : start + size]


def build_wide_layer(path: Path, entries: int) -> str:
    """Write the gzip layer to ``path``; returns its diff_id (sha256 of the tar)."""
    with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as out:
        hashing = _Hashing(out)
        with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.GNU_FORMAT) as tar:  # type: ignore[call-overload]
            for name, data in wide_entries(entries):
                info = tarfile.TarInfo(name)
                info.mode, info.mtime = (0o755 if data is None else 0o644), MTIME
                if data is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, _Reader(data))
    return "sha256:" + hashing.sha.hexdigest()


class _Reader:
    """The file object ``tarfile.addfile`` reads a member's data from."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.at + size
        chunk, self.at = self.data[self.at : end], min(end, len(self.data))
        return chunk


@dataclass(frozen=True)
class Pushed:
    """What the benchmark refers to: references through the proxy and the layers' digests."""

    big: str
    small: str
    big_digest: str
    big_size: int
    small_digest: str
    small_size: int
    last_folder: str


def push_images(
    registry_url: str, proxy_host: str, blob: bytes, diff_id: str, entries: int
) -> Pushed:
    """Push the big image and a small, different one; refer to both through the proxy."""
    small = make_layer(
        [Member("etc/hostname", data=b"small\n"), Member("etc/os-release", data=b"ID=load\n")]
    )
    big_config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "COPY usr /usr # bench/load.py"}],
    }
    with Pusher(registry_url) as pusher:
        pusher.image(BIG_REPO, ["latest"], [(blob, OCI_LAYER_GZIP)], big_config)
        pusher.image(
            SMALL_REPO, ["latest"], [(small.blob, small.media_type)], image_config([small])
        )
    return Pushed(
        big=f"{proxy_host}/{BIG_REPO}:latest",
        small=f"{proxy_host}/{SMALL_REPO}:latest",
        big_digest=sha256_digest(blob),
        big_size=len(blob),
        small_digest=small.digest,
        small_size=small.size,
        last_folder=f"usr/share/d{(entries - 1) // PER_DIR:05d}/",
    )


# -- the server ------------------------------------------------------------------------------


@dataclass
class Server:
    """One ``layerpeek-mcp --http`` process."""

    process: subprocess.Popen[bytes]
    url: str

    def peak_rss_mb(self) -> float:
        """VmHWM: the most this server process has held resident since it started."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_command() -> list[str]:
    """The installed ``layerpeek-mcp`` beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("layerpeek-mcp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "layerpeek.server"]


@contextmanager
def serving(cache: Path, plain: str, workdir: Path, log: Path) -> Iterator[Server]:
    """A fresh server on a free port with ``cache`` as its cache directory; stopped after."""
    port = _free_port()
    env = {
        **os.environ,
        "LAYERPEEK_ALLOW_PRIVATE": "127.0.0.1",
        "LAYERPEEK_PLAIN_HTTP": plain,
        "LAYERPEEK_CACHE_DIR": str(cache),
        "LAYERPEEK_MCP_CONCURRENT_CALLS": "64",
    }
    command = [*_server_command(), "--http", "--host", "127.0.0.1", "--port", str(port)]
    workdir.mkdir(parents=True, exist_ok=True)  # no .env there: --http would read one
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=out)
    try:
        _wait_for_port(process, port, log)
        yield Server(process, f"http://127.0.0.1:{port}/mcp")
    finally:
        terminate(process)


def _wait_for_port(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"layerpeek-mcp exited:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"layerpeek-mcp did not listen on {port} within 30 s:\n{log.read_text()}")


# -- the callers -----------------------------------------------------------------------------


@asynccontextmanager
async def caller(url: str) -> AsyncIterator[Client]:
    """One simulated caller: its own HTTP connection pool and MCP session."""
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(300)) as http:
        endpoint = streamable_http_client(url, http_client=http)
        async with Client(endpoint, mode="legacy") as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured answer of a successful call; a failed one ends the benchmark."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content[0].text}")
    return result.structured_content or {}


async def timed(client: Client, tool: str, **arguments: Any) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    answer = await call(client, tool, **arguments)
    return time.perf_counter() - started, answer


def listing_key(answer: dict[str, Any]) -> tuple[bool, tuple[str, ...]]:
    """What must be the same in every caller's answer: complete, and the paths listed."""
    return bool(answer.get("complete", True)), tuple(e["path"] for e in answer["entries"])


async def inspect_every(
    client: Client, ref: str, stop: anyio.Event, latencies: list[float]
) -> None:
    """The unrelated call: ``inspect_image`` of the small image every 100 ms until ``stop``."""
    while not stop.is_set():
        seconds, _ = await timed(client, "inspect_image", reference=ref)
        latencies.append(seconds)
        with anyio.move_on_after(max(0.0, INSPECT_EVERY - seconds)):
            await stop.wait()


async def watch(url: str, ref: str) -> None:
    """The unrelated caller, in a process of its own (``load.py watch URL REF``) so that the
    load's clients, which decode every page in the benchmark's process, do not delay its
    clock: warms up, says ``ready``, inspects every 100 ms until its stdin closes, then
    prints its latencies as JSON."""
    async with caller(url) as client:
        await call(client, "inspect_image", reference=ref)  # its manifest, warm
        print("ready", flush=True)
        latencies: list[float] = []
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(inspect_every, client, ref, stop, latencies)
            await anyio.to_thread.run_sync(sys.stdin.read)
            stop.set()
    print(json.dumps(latencies), flush=True)


@asynccontextmanager
async def watching(url: str, ref: str) -> AsyncIterator[list[float]]:
    """The watcher process running for the body; the list holds its latencies after it."""
    command = [sys.executable, str(Path(__file__).resolve()), "watch", url, ref]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":  # blocks the loop before the load only
        raise SystemExit("the inspect watcher did not start")
    latencies: list[float] = []
    try:
        yield latencies
    finally:
        stdout, _ = process.communicate("")  # closes its stdin: it stops and reports
    latencies.extend(json.loads(stdout))


async def baselines(server: Server, pushed: Pushed, out: dict[str, Any]) -> None:
    """(e) one call of each kind, alone on a fresh server."""
    async with caller(server.url) as client:
        seconds, answer = await timed(
            client, "list_files", reference=pushed.big, layer=0,
            path_prefix=pushed.last_folder, limit=PAGE,
        )  # fmt: skip
        out["single_list_s"], out["single_list_key"] = seconds, listing_key(answer)
        out["single_merged_s"], answer = await timed(
            client, "list_files", reference=pushed.big, merged=True, limit=PAGE
        )
        out["single_merged_key"] = listing_key(answer)
    async with watching(server.url, pushed.small) as idle:
        await anyio.sleep(30 * INSPECT_EVERY)
    out["idle_inspect"] = idle
    out["single_rss_mb"] = server.peak_rss_mb()


async def cold_listings(server: Server, pushed: Pushed, callers: int, out: dict[str, Any]) -> None:
    """(a) ``callers`` concurrent cold listings of the same big layer; two go away part-way."""
    answers: dict[int, tuple[float, Any]] = {}
    cancelled: list[int] = []

    async def one(index: int, client: Client, ready: anyio.Event) -> None:
        await ready.wait()
        limit = CANCEL_AFTER[index] if index < len(CANCEL_AFTER) else None
        with anyio.move_on_after(limit if limit is not None else float("inf")) as scope:
            answers[index] = await timed(
                client, "list_files", reference=pushed.big, layer=0,
                path_prefix=pushed.last_folder, limit=PAGE,
            )  # fmt: skip
        if scope.cancelled_caught:
            cancelled.append(index)

    async with _callers(server.url, callers) as clients:
        ready = anyio.Event()
        async with anyio.create_task_group() as group:
            for index, client in enumerate(clients):
                group.start_soon(one, index, client, ready)
            started = time.perf_counter()
            ready.set()
        out["cold_wall_s"] = time.perf_counter() - started
    keys = {listing_key(answer) for _, answer in answers.values()}
    out["cold_answers"] = len(answers)
    out["cold_cancelled"] = len(cancelled)
    out["cold_all_same"] = keys == {out["single_list_key"]}
    out["cold_slowest_s"] = max(seconds for seconds, _ in answers.values())
    out["cold_rss_mb"] = server.peak_rss_mb()


@asynccontextmanager
async def _callers(url: str, count: int) -> AsyncIterator[list[Client]]:
    """``count`` connected callers, all sessions open before any call starts."""
    if count == 0:
        yield []
        return
    async with caller(url) as first, _callers(url, count - 1) as rest:
        yield [first, *rest]


async def merged_load(server: Server, pushed: Pushed, callers: int, out: dict[str, Any]) -> None:
    """(b) ``callers`` concurrent callers paging merged pages, (c) with the unrelated inspect
    of the small image every 100 ms from another process meanwhile."""
    page_seconds: list[float] = []

    async def pages(client: Client) -> None:
        cursor = None
        for _ in range(out["pages_each"]):
            arguments: dict[str, Any] = {"reference": pushed.big, "merged": True, "limit": PAGE}
            if cursor:
                arguments["cursor"] = cursor
            seconds, answer = await timed(client, "list_files", **arguments)
            page_seconds.append(seconds)
            cursor = answer["next_cursor"]

    async with (
        _callers(server.url, callers) as clients,
        watching(server.url, pushed.small) as loaded,
    ):
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(pages, client)
        out["merged_wall_s"] = time.perf_counter() - started
    out["merged_page_s"] = page_seconds
    out["load_inspect"] = loaded
    out["load_rss_mb"] = server.peak_rss_mb()


async def page_through(server: Server, pushed: Pushed, out: dict[str, Any]) -> None:
    """(d) every merged page, one after another with the cursor."""
    async with caller(server.url) as client:
        cursor, pages, entries = None, 0, 0
        started = time.perf_counter()
        while True:
            arguments: dict[str, Any] = {"reference": pushed.big, "merged": True, "limit": PAGE}
            if cursor:
                arguments["cursor"] = cursor
            answer = await call(client, "list_files", **arguments)
            pages, entries = pages + 1, entries + len(answer["entries"])
            cursor = answer["next_cursor"]
            if not cursor:
                break
        out["paging_s"] = time.perf_counter() - started
    out["paging_pages"], out["paging_entries"] = pages, entries


async def two_processes(urls: list[str], pushed: Pushed, out: dict[str, Any]) -> None:
    """(f) two servers on one cache directory asking for the same cold merged page at once:
    a merged view reads every layer whole, which is what takes the cache's lease of a layer
    (a filtered page of one layer reads only as far as it needs, unleased)."""
    keys: list[Any] = []

    async def one(url: str) -> None:
        async with caller(url) as client:
            _, answer = await timed(
                client, "list_files", reference=pushed.big, merged=True, limit=PAGE
            )
            keys.append(listing_key(answer))

    async with anyio.create_task_group() as group:
        for url in urls:
            group.start_soon(one, url)
    out["shared_all_same"] = set(keys) == {out["single_merged_key"]}


# -- the run ---------------------------------------------------------------------------------


def run(
    scratch: Path, blob: bytes, diff_id: str, entries: int, callers: int, pages: int
) -> dict[str, Any]:
    """Every scenario against one registry and proxy; returns the figures."""
    out: dict[str, Any] = {"pages_each": pages}
    log = scratch / "servers.log"
    with RegistryProcess(scratch / "storage") as registry, FaultProxy(registry.url) as proxy:
        pushed = push_images(registry.url, proxy.host, blob, diff_id, entries)
        plain = f"{registry.host},{proxy.host}"
        big_blob, small_blob = f"/blobs/{pushed.big_digest}$", f"/blobs/{pushed.small_digest}$"
        out["big_size"], out["small_size"] = pushed.big_size, pushed.small_size
        with serving(scratch / "cache-single", plain, scratch / "single", log) as single:
            anyio.run(baselines, single, pushed, out)
        proxy.reset()
        with serving(scratch / "cache-load", plain, scratch / "load", log) as server:
            anyio.run(cold_listings, server, pushed, callers, out)
            out["cold_bytes"] = proxy.body_bytes(big_blob)
            anyio.run(merged_load, server, pushed, callers, out)
            anyio.run(page_through, server, pushed, out)
            out["load_bytes"] = proxy.body_bytes(big_blob)
            out["load_small_bytes"] = proxy.body_bytes(small_blob)
        proxy.reset()
        shared = scratch / "cache-shared"
        with (
            serving(shared, plain, scratch / "one", log) as one,
            serving(shared, plain, scratch / "two", log) as two,
        ):
            anyio.run(two_processes, [one.url, two.url], pushed, out)
        out["shared_bytes"] = proxy.body_bytes(big_blob)
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _p(values: list[float], percent: int) -> float:
    """The ``percent``-th percentile (inclusive: p99 of 30 samples is near their worst)."""
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(out: dict[str, Any], entries: int, tar_mb: float, callers: int) -> None:
    """The table of scenarios, then each target with its figure."""
    size = out["big_size"]
    idle, loaded = out["idle_inspect"], out["load_inspect"]
    merged = out["merged_page_s"]
    rows = [
        ("(e) one cold list_files of the big layer", f"{out['single_list_s']:.2f} s"),
        ("(e) one merged page (cold merge)", f"{out['single_merged_s']:.2f} s"),
        (
            f"(e) inspect_image idle, {len(idle)} calls",
            f"p50 {_ms(_p(idle, 50))}, p99 {_ms(_p(idle, 99))}",
        ),
        ("(e) server peak RSS after these single calls", f"{out['single_rss_mb']:.0f} MB"),
        (
            f"(a) {callers} cold list_files, {out['cold_cancelled']} cancelled",
            f"{out['cold_answers']} answered in {out['cold_wall_s']:.2f} s, "
            f"{'all identical to the single call' if out['cold_all_same'] else 'ANSWERS DIFFER'}",
        ),
        (
            "(a) big blob bytes at the proxy",
            f"{out['cold_bytes']:,} ({out['cold_bytes'] / size:.2f}x)",
        ),
        ("(a) server peak RSS", f"{out['cold_rss_mb']:.0f} MB"),
        (
            f"(b) {callers} callers x {out['pages_each']} merged pages",
            f"{out['merged_wall_s']:.2f} s, page p50 {_ms(_p(merged, 50))}, "
            f"p99 {_ms(_p(merged, 99))}",
        ),
        (
            f"(c) inspect_image during (b), {len(loaded)} calls",
            f"p50 {_ms(_p(loaded, 50))}, p99 {_ms(_p(loaded, 99))}",
        ),
        ("(b) server peak RSS (after a and b)", f"{out['load_rss_mb']:.0f} MB"),
        (
            "(d) every merged page with the cursor",
            f"{out['paging_pages']} pages, {out['paging_entries']:,} entries, "
            f"{out['paging_s']:.2f} s",
        ),
        (
            "big blob bytes, whole load server run (a-d)",
            f"{out['load_bytes']:,} ({out['load_bytes'] / size:.2f}x)",
        ),
        ("small image's layer bytes (inspect reads none)", f"{out['load_small_bytes']:,}"),
        (
            "(f) two servers, one cache dir, same merged page",
            f"{out['shared_bytes']:,} ({out['shared_bytes'] / size:.2f}x), "
            f"{'answers identical' if out['shared_all_same'] else 'ANSWERS DIFFER'}",
        ),
    ]
    print(
        f"\nbig layer: {entries:,} entries, {tar_mb:.0f} MB tar, {size / 1e6:.0f} MB gzip; "
        f"{callers} callers, each its own MCP session over streamable HTTP\n"
    )
    width = max(len(label) for label, _ in rows)
    for label, figure in rows:
        print(f"{label:{width}}  {figure}")
    worst_bytes = max(out["load_bytes"], out["shared_bytes"]) / size
    p99 = _p(loaded, 99) * 1000
    rss_ratio = out["load_rss_mb"] / out["single_rss_mb"]
    targets = [
        (
            "blob bytes per distinct layer <= 1.0x",
            f"{worst_bytes:.2f}x",
            worst_bytes <= TARGETS["bytes"] + 0.005,
        ),
        (
            "p99 of the unrelated inspect under load <= 250 ms",
            f"{p99:.0f} ms (idle {_p(idle, 99) * 1000:.0f} ms)",
            p99 <= TARGETS["p99_ms"],
        ),
        (
            "peak RSS under load <= 2x a single call",
            f"{rss_ratio:.2f}x ({out['load_rss_mb']:.0f} / {out['single_rss_mb']:.0f} MB)",
            rss_ratio <= TARGETS["rss_ratio"],
        ),
        (
            "every merged page in < 15 s",
            f"{out['paging_s']:.2f} s",
            out["paging_s"] < TARGETS["paging_s"],
        ),
    ]
    correct = out["cold_all_same"] and out["shared_all_same"]
    print()
    for label, figure, met in targets:
        print(f"target: {label:50}  {figure:28}  {_verdict(met)}")
    print(f"every answer identical to the single call's: {'yes' if correct else 'NO'}")


def main() -> None:
    if sys.argv[1:2] == ["watch"]:
        anyio.run(watch, *sys.argv[2:4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50_000, help="entries in the big layer")
    parser.add_argument("--callers", type=int, default=10, help="concurrent callers")
    parser.add_argument(
        "--pages",
        type=int,
        default=50,
        help="merged pages each caller of (b) reads in turn: how long the load lasts, so how "
        "many samples of the unrelated inspect its p99 is taken from",
    )
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "layerpeek-bench"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    blob_path = args.work / f"wide-{args.entries}.tar.gz"
    started = time.perf_counter()
    diff_id = build_wide_layer(blob_path, args.entries)
    blob = blob_path.read_bytes()
    tar_mb = _tar_size(blob_path) / 1e6
    print(
        f"layer: {args.entries:,} entries, {tar_mb:.0f} MB tar, {len(blob) / 1e6:.0f} MB gzip "
        f"(built in {time.perf_counter() - started:.0f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="layerpeek-load-") as scratch:
        out = run(Path(scratch), blob, diff_id, args.entries, args.callers, args.pages)
    report(out, args.entries, tar_mb, args.callers)


def _tar_size(path: Path) -> int:
    with gzip.open(path, "rb") as stream:
        return sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 20), b""))


if __name__ == "__main__":
    main()
