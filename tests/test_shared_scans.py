"""Single-flight across processes: processes sharing one cache (one SQLite directory, or one
Redis) that list the same layer at the same time read it from the registry once between
them; a holder that dies does not keep the others waiting, and a Redis that is down only
means each scans alone.

Each process is a real child running ``LISTER`` on the real backends. The one that scans
first pauses after its first progress report (it blocks reading its stdin), so the second
starts while the first is mid-scan; the second says ``waiting`` when it finds the lease held
(the store's own ``try_lease`` answered False), which is when the test lets the first go on,
or kills it. Blob bytes are counted at the fault proxy."""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.proxy import FaultProxy
from fixtures.redis_server import RedisServer, free_port
from layerpeek.core.cache import sqlite as cache
from layerpeek.core.cache.interface import key_for
from layerpeek.core.registry.reference import parse_reference

LISTER = textwrap.dedent(
    """
    import sys
    import anyio
    from layerpeek.core.cache.sqlite import AsyncCache
    from layerpeek.core.cache.redis_store import RedisCache
    from layerpeek.core.registry.client import RegistryClient
    from layerpeek.core.service import Layerpeek

    backend, where, ref, pause = sys.argv[1:5]
    base = AsyncCache if backend == "sqlite" else RedisCache
    told = set()

    def say(line):
        if line not in told:
            told.add(line)
            print(line, flush=True)

    class Store(base):
        async def try_lease(self, key):
            taken = await super().try_lease(key)
            if taken is False:
                say("waiting")
            return taken

    def progress(_):
        if pause == "pause" and "scanning" not in told:
            say("scanning")
            sys.stdin.readline()  # blocks this process until the test says go on

    async def main():
        store = Store(Path(where)) if backend == "sqlite" else Store(where)
        async with RegistryClient() as client:
            peek = Layerpeek(client, cache=store)
            image = await peek.resolve(ref)
            paths = [e.path async for e in peek.entries(image, 1, progress, whole=True)]
        await store.close()
        say(f"entries {len(paths)}")

    from pathlib import Path
    anyio.run(main)
    """
)
DEADLINE = 120.0
"""Seconds a wait for a child's line may last before the test fails (a hang, not a timing)."""


class Child:
    """One lister process, its stdout lines gathered by a thread."""

    def __init__(self, backend: str, where: str, ref: str, *, pause: bool = False) -> None:
        mode = "pause" if pause else "run"
        self.process = subprocess.Popen(
            [sys.executable, "-c", LISTER, backend, where, ref, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def said(self, line: str, *, block: float = 0.0) -> bool:
        """Whether the child said ``line`` yet (waiting up to ``block`` seconds for more)."""
        with contextlib.suppress(queue.Empty):
            while line not in self.seen:
                self.seen.append(
                    self.lines.get(timeout=block) if block else self.lines.get_nowait()
                )
        return line in self.seen

    def go_on(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self) -> list[str]:
        self.process.wait(timeout=DEADLINE)
        self._reader.join(timeout=DEADLINE)
        assert self.process.stderr is not None
        assert self.process.returncode == 0, self.process.stderr.read()
        self.said("")  # gather what is left
        return self.seen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.stop()


def _blob(digest: str) -> str:
    return rf"/blobs/{re.escape(digest)}$"


def _until(condition: object, what: str) -> None:
    """Wait (bounded by ``DEADLINE``) for ``condition()``; each look blocks on a child's line."""
    give_up = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < give_up, f"never: {what}"


def _second_is_held_back(second: Child, proxy: FaultProxy, blob: str, before: int) -> None:
    """Until the second child finds the lease held, or (with no lease to find) asks for the
    blob itself: then it is past the point where it would have started its own scan. Its
    requests are those after the first ``before``: the first child is paused meanwhile."""

    def decided() -> bool:
        if second.said("waiting", block=0.05):
            return True
        return any(re.search(blob, r.path) for r in proxy.requests[before:])

    _until(decided, "the second process neither waited nor read the blob")


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where two processes share their cache: a SQLite directory, or a Redis URL."""
    if request.param == "sqlite":
        return f"sqlite {tmp_path / 'cache'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    return f"redis {server.url}"


def test_two_processes_listing_one_layer_at_once_read_it_once(
    layerpeek_env, shared, fault_proxy, catalog, children
):
    backend, where = shared.split(" ", 1)
    layer = catalog.gzip.layers[1]
    ref = catalog.gzip.ref(fault_proxy.host)
    first = Child(backend, where, ref, pause=True)
    children.append(first)
    _until(lambda: first.said("scanning", block=0.05), "the first process never scanned")
    before = len(fault_proxy.requests)
    second = Child(backend, where, ref)
    children.append(second)
    _second_is_held_back(second, fault_proxy, _blob(layer.digest), before)
    first.go_on()
    wanted = f"entries {len(layer.entries)}"
    assert wanted in first.finish() and wanted in second.finish()
    assert fault_proxy.body_bytes(_blob(layer.digest)) == layer.size  # 1.0x, not 2.0x


def test_a_holder_killed_mid_scan_leaves_the_scan_to_the_waiter(
    layerpeek_env, tmp_path, fault_proxy, catalog, children
):
    where = str(tmp_path / "cache")
    layer = catalog.gzip.layers[1]
    ref = catalog.gzip.ref(fault_proxy.host)
    first = Child("sqlite", where, ref, pause=True)
    children.append(first)
    _until(lambda: first.said("scanning", block=0.05), "the first process never scanned")
    before = len(fault_proxy.requests)
    second = Child("sqlite", where, ref)
    children.append(second)
    _second_is_held_back(second, fault_proxy, _blob(layer.digest), before)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    seen = second.finish()
    assert seen == ["waiting", f"entries {len(layer.entries)}"]
    # The first read part of the blob before it died; the second read all of it again.
    assert fault_proxy.body_bytes(_blob(layer.digest)) > layer.size
    assert list((Path(where) / "locks").iterdir()) == []  # the waiter's lock file is gone


def test_a_redis_lease_never_released_ends_with_its_ttl(
    layerpeek_env, redis_server, fault_proxy, catalog, children
):
    redis_server.flush()
    layer = catalog.gzip.layers[1]
    ref = catalog.gzip.ref(fault_proxy.host)
    key = f"layerpeek:v1:lease:{key_for(parse_reference(ref), layer.digest)}"
    with redis_server.client() as raw:
        raw.set(key, "a holder that died")
        waiter = Child("redis", redis_server.url, ref)
        children.append(waiter)
        # The time to live starts once the waiter waits, however long the child took to start.
        assert waiter.said("waiting", block=DEADLINE)
        raw.pexpire(key, 500)
    assert waiter.finish() == ["waiting", f"entries {len(layer.entries)}"]
    assert fault_proxy.body_bytes(_blob(layer.digest)) == layer.size
    with redis_server.client() as raw:
        assert raw.exists(key) == 0  # released once the index was stored


def test_with_redis_down_both_processes_scan_and_neither_fails(
    layerpeek_env, fault_proxy, catalog, children
):
    down = f"redis://127.0.0.1:{free_port()}"
    layer = catalog.gzip.layers[1]
    ref = catalog.gzip.ref(fault_proxy.host)
    pair = [Child("redis", down, ref), Child("redis", down, ref)]
    children.extend(pair)
    for child in pair:
        assert child.finish() == [f"entries {len(layer.entries)}"]
    assert fault_proxy.body_bytes(_blob(layer.digest)) == 2 * layer.size


def test_a_file_lease_is_exclusive_and_leaves_no_file(tmp_path):
    """One holder at a time, across processes (two ``FileLeases`` lock as two processes do)
    and within one; a released lease unlinks its file, so none piles up per layer."""
    holder, waiter = cache.FileLeases(tmp_path), cache.FileLeases(tmp_path)
    assert holder.take("r@sha256:1") is True
    assert waiter.take("r@sha256:1") is False
    assert holder.take("r@sha256:1") is False  # held by another caller of this process
    holder.release("r@sha256:1")
    assert waiter.take("r@sha256:1") is True
    assert list(tmp_path.iterdir()) == [waiter.path("r@sha256:1")]
    waiter.release("r@sha256:1")
    assert list(tmp_path.iterdir()) == []


# -- the Redis lease on its own ----------------------------------------------------------------


class Clock:
    """A clock the test moves: renewals depend on time passed, not on sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_redis_lease_is_renewed_while_used_and_released_only_by_its_holder(
    redis_server,
):
    from layerpeek.core.cache.redis_store import RedisCache

    redis_server.flush()
    key, raw_key = "r@sha256:1", "layerpeek:v1:lease:r@sha256:1"
    clock = Clock()
    holder = RedisCache(redis_server.url, lease_ttl=30.0, clock=clock)
    other = RedisCache(redis_server.url, lease_ttl=30.0)
    try:
        assert await holder.try_lease(key) is True
        assert await other.try_lease(key) is False
        assert await holder.try_lease(key) is False  # held by another caller of this process
        with redis_server.client() as raw:
            raw.pexpire(raw_key, 5000)
            await holder.renew_lease(key)  # less than a third of the TTL since: not yet
            assert 0 < raw.pttl(raw_key) <= 5000  # still there (-2 would mean no key)
            clock.now += 10.0
            await holder.renew_lease(key)
            assert raw.pttl(raw_key) > 5000
            # Its time ran out and another took it: the late holder must not free it.
            raw.delete(raw_key)
            assert await other.try_lease(key) is True
            await holder.release_lease(key)
            assert raw.exists(raw_key) == 1
            await other.release_lease(key)
            assert raw.exists(raw_key) == 0
    finally:
        await holder.close()
        await other.close()


async def test_a_redis_that_is_down_lends_no_lease_and_nothing_fails():
    from layerpeek.core.cache.redis_store import RedisCache

    store = RedisCache(f"redis://127.0.0.1:{free_port()}")
    try:
        assert await store.try_lease("r@sha256:1") is None
        await store.renew_lease("r@sha256:1")
        await store.release_lease("r@sha256:1")
    finally:
        await store.close()


async def test_a_page_reads_itself_while_another_process_holds_the_lease(
    layerpeek_env, tmp_path, fault_proxy, catalog
):
    """A first page reads a few hundred KiB: waiting for another's whole scan costs more."""
    from layerpeek.core.registry.client import RegistryClient
    from layerpeek.core.service import Layerpeek

    layer = catalog.gzip.layers[1]
    ref = catalog.gzip.ref(fault_proxy.host)
    elsewhere = cache.FileLeases(tmp_path / "cache" / cache.LOCKS)
    assert elsewhere.take(key_for(parse_reference(ref), layer.digest)) is True
    store = cache.AsyncCache(tmp_path / "cache")
    async with RegistryClient() as client, Layerpeek(client, cache=store) as peek:
        image = await peek.resolve(ref)
        view = await peek.indexes.view(image.reference, image.manifest.layers[1], 1)
    await store.close()
    assert view.entries and not view.complete
    assert 0 < fault_proxy.body_bytes(_blob(layer.digest)) < layer.size
    elsewhere.release_all()
