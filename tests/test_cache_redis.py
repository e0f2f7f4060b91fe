"""The Redis cache against a real redis-server: round trips, checksums, TTLs, eviction, a
Redis that is down or full, bad URLs, and a layer listed again through it for zero blob bytes
at the fault proxy, by a second client and by a second process."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from fixtures.redis_server import RedisServer, free_port
from fixtures.tools import require_tool
from layerpeek.cli.main import main
from layerpeek.core.cache.interface import key_for, open_cache
from layerpeek.core.cache.redis_store import IDLE_TTL, RETRY_AFTER, RedisCache, content_key
from layerpeek.core.cache.sqlite import FILE_NAME, AsyncCache
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.reference import parse_reference
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisCache]:
    cache = RedisCache(redis_url)
    yield cache
    await cache.close()


# -- the store on its own --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["index", "manifest", "config"])
async def test_payloads_round_trip_by_kind_and_digest(store, kind):
    await store.put(kind, DIGEST, b"payload of " + kind.encode())
    assert await store.get(kind, DIGEST) == b"payload of " + kind.encode()
    others = {"index", "manifest", "config"} - {kind}
    assert [await store.get(other, DIGEST) for other in sorted(others)] == [None, None]
    assert await store.get(kind, OTHER) is None


async def test_keys_are_namespaced_and_versioned(store, redis_server):
    await store.put("index", DIGEST, b"x")
    with redis_server.client() as raw:
        keys = sorted(raw.keys("*"))
    assert keys == [f"layerpeek:v1:index:{DIGEST}".encode()]


async def test_an_empty_payload_round_trips(store):
    await store.put("config", DIGEST, b"")
    assert await store.get("config", DIGEST) == b""


@pytest.mark.parametrize(
    "damage",
    [
        lambda value: value[:-1] + bytes([value[-1] ^ 1]),  # one flipped bit in the payload
        lambda value: bytes([value[0] ^ 1]) + value[1:],  # one flipped bit in the checksum
        lambda value: value[:10],  # torn: shorter than a checksum
        lambda value: b"",
    ],
    ids=["payload-bit", "checksum-bit", "torn", "empty"],
)
async def test_a_corrupt_payload_is_dropped_not_served(store, redis_server, damage):
    await store.put("index", DIGEST, b"the real index")
    key = content_key("index", DIGEST)
    with redis_server.client() as raw:
        raw.set(key, damage(raw.get(key)))
        assert await store.get("index", DIGEST) is None
        assert raw.exists(key) == 0  # dropped: the next put rebuilds it
    await store.put("index", DIGEST, b"the real index")
    assert await store.get("index", DIGEST) == b"the real index"


async def test_a_hit_renews_the_idle_ttl_of_content(store, redis_server):
    await store.put("config", DIGEST, b"kept while used")
    key = content_key("config", DIGEST)
    with redis_server.client() as raw:
        assert IDLE_TTL * 1000 - 60_000 < raw.pttl(key) <= IDLE_TTL * 1000
        raw.pexpire(key, 5_000)
        assert await store.get("config", DIGEST) == b"kept while used"
        assert raw.pttl(key) > IDLE_TTL * 1000 - 60_000


async def test_redis_evicts_least_recently_used_content_when_full(store, redis_server):
    with redis_server.client() as raw:
        used = int(raw.info("memory")["used_memory"])
        raw.config_set("maxmemory", used + (1 << 20))
        raw.config_set("maxmemory-policy", "allkeys-lru")
    payloads = {f"sha256:{i:064x}": bytes([i]) * 200_000 for i in range(20)}
    for digest, payload in payloads.items():
        await store.put("index", digest, payload)
    kept = {d: await store.get("index", d) for d in payloads}
    assert kept[max(payloads)] == payloads[max(payloads)]  # the newest is there
    assert any(value is None for value in kept.values())  # older ones were evicted
    assert all(value in (None, payloads[d]) for d, value in kept.items())


async def test_a_full_redis_that_cannot_evict_skips_writes(store, redis_server):
    await store.put("config", DIGEST, b"stored before it filled up")
    with redis_server.client() as raw:
        raw.config_set("maxmemory", 1)  # noeviction (the default): every write is refused
    await store.put("config", OTHER, b"refused")
    assert await store.get("config", OTHER) is None
    assert await store.get("config", DIGEST) == b"stored before it filled up"


async def test_a_unix_socket_url_works(redis_server):
    redis_server.flush()
    store = RedisCache(redis_server.unix_url)
    await store.put("manifest", DIGEST, b"over the socket")
    assert await store.get("manifest", DIGEST) == b"over the socket"
    await store.close()


# -- a Redis that is gone --------------------------------------------------------------------


def _never_backs_off() -> itertools.count:
    """A clock an hour further on at every reading: each call tries Redis again."""
    return itertools.count(0, 3600)


async def _every_call_quietly(store: RedisCache) -> list[object]:
    return [
        await store.put("index", DIGEST, b"lost"),
        await store.get("index", DIGEST),
    ]


async def test_no_redis_listening_is_a_miss_and_writes_are_skipped():
    store = RedisCache(f"redis://127.0.0.1:{free_port()}/0", clock=_never_backs_off().__next__)
    assert await _every_call_quietly(store) == [None] * 2
    await store.close()


@pytest.mark.redis  # its own redis-server, which it stops
async def test_a_redis_that_stops_is_a_miss_not_a_failure():
    with RedisServer(require_tool("redis-server")) as server:
        store = RedisCache(server.url, clock=_never_backs_off().__next__)
        await store.put("index", DIGEST, b"kept")
        assert await store.get("index", DIGEST) == b"kept"
        server.stop()  # the pooled connection is now dead and nothing listens
        assert await _every_call_quietly(store) == [None] * 2
        await store.close()


def _accepted(listener: socket.socket) -> int:
    """Connections the kernel completed for ``listener`` since the last call (then closed)."""
    count = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            listener.accept()[0].close()
            count += 1
    return count


async def test_an_unresponsive_redis_is_not_asked_again_for_a_while():
    now = [0.0]
    # A listener that never answers: the handshake completes, the reply never comes.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.setblocking(False)
        port = silent.getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0?socket_timeout=0.05&socket_connect_timeout=0.05"
        store = RedisCache(url, clock=lambda: now[0])
        assert await store.get("index", DIGEST) is None
        assert _accepted(silent) >= 1
        assert await _every_call_quietly(store) == [None] * 2
        assert _accepted(silent) == 0  # within RETRY_AFTER: not even a connection attempt
        now[0] += RETRY_AFTER
        assert await store.get("config", DIGEST) is None
        assert _accepted(silent) >= 1
        await store.close()


# -- choosing the backend, and bad URLs ------------------------------------------------------


async def test_the_settings_choose_the_backend(tmp_path, redis_url):
    for url in (None, ""):
        sqlite = open_cache(Settings(cache_dir=tmp_path, cache_url=url))
        assert isinstance(sqlite, AsyncCache)
        await sqlite.close()
    shared = open_cache(Settings(cache_dir=tmp_path, cache_url=redis_url))
    assert isinstance(shared, RedisCache)
    await shared.put("config", DIGEST, b"x")
    await shared.close()
    assert not (tmp_path / FILE_NAME).exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://cache:6379", "unsupported scheme http://"),
        ("cache.example:6379", "unsupported scheme"),
        ("//cache:6379", "unsupported scheme (none)"),
        ("redis://", "no host"),
        ("redis://:s3cret@cache:port", "Port could not be cast"),
        ("redis://cache/zero", "database 'zero' is not a number"),
        ("unix://", "no socket path"),
        ("redis://cache/0?socket_timeout=soon", "socket_timeout"),
        ("redis://cache/0?no_such_option=1", "no_such_option"),
        ("redis://[::1/0", "Invalid IPv6 URL"),
    ],
)
def test_a_malformed_url_is_a_one_line_error_naming_the_setting(url, problem):
    with pytest.raises(LayerpeekError) as caught:
        RedisCache(url)
    message = str(caught.value)
    assert message.startswith("invalid LAYERPEEK_CACHE_URL: ") and "\n" not in message
    assert problem in message and "redis://[[USER]:PASSWORD@]HOST" in message
    assert "s3cret" not in message


def test_the_cli_reports_a_malformed_url_in_one_line(capsys, monkeypatch, layerpeek_env):
    monkeypatch.setenv("LAYERPEEK_CACHE_URL", "redis://cache:port")
    status = main(["inspect", "127.0.0.1:1/some/image:1"])
    err = capsys.readouterr().err
    assert status == 3
    assert err.count("\n") == 1 and "invalid LAYERPEEK_CACHE_URL" in err


# -- end to end: a layer listed once is listed again from Redis --------------------------------


def _blob(digest: str) -> str:
    return rf"/blobs/{re.escape(digest)}$"


async def _list_layer(ref: str, layer: int) -> list[object]:
    """List one layer with a fresh client and core, as a new process would."""
    async with RegistryClient() as client:
        peek = Layerpeek(client)
        try:
            image = await peek.resolve(ref)
            return [entry async for entry in peek.entries(image, layer)]
        finally:
            await peek.cache.close()


async def test_a_second_listing_through_redis_reads_no_blob_bytes(
    layerpeek_env, monkeypatch, redis_url, redis_server, fault_proxy, catalog
):
    monkeypatch.setenv("LAYERPEEK_CACHE_URL", redis_url)
    layer = catalog.gzip.layers[1]
    ref = catalog.gzip.ref(fault_proxy.host)
    first = await _list_layer(ref, 1)
    assert fault_proxy.body_bytes(_blob(layer.digest)) > 0
    fault_proxy.reset()
    again = await _list_layer(ref, 1)
    assert again == first and len(first) == len(layer.entries)
    assert fault_proxy.body_bytes(_blob(layer.digest)) == 0
    # The registry is still asked what the tag means now (a HEAD); the body is cached.
    manifests = [r.method for r in fault_proxy.requests if "/manifests/" in r.path]
    assert manifests == ["HEAD"]
    with redis_server.client() as raw:
        key = content_key("index", key_for(parse_reference(ref), layer.digest))
        assert raw.exists(key) == 1
    assert list(Path(os.environ["LAYERPEEK_CACHE_DIR"]).iterdir()) == []  # no SQLite file


async def test_a_corrupt_index_in_redis_is_rebuilt_not_served(
    layerpeek_env, monkeypatch, redis_url, redis_server, fault_proxy, catalog
):
    monkeypatch.setenv("LAYERPEEK_CACHE_URL", redis_url)
    layer = catalog.gzip.layers[1]
    ref = catalog.gzip.ref(fault_proxy.host)
    first = await _list_layer(ref, 1)
    key = content_key("index", key_for(parse_reference(ref), layer.digest))
    with redis_server.client() as raw:
        value = raw.get(key)
        raw.set(key, value[:32] + bytes(len(value) - 32))
    fault_proxy.reset()
    assert await _list_layer(ref, 1) == first
    assert fault_proxy.body_bytes(_blob(layer.digest)) == layer.size


async def test_a_second_process_lists_from_what_the_first_learnt(
    layerpeek_env, monkeypatch, redis_url, fault_proxy, catalog
):
    monkeypatch.setenv("LAYERPEEK_CACHE_URL", redis_url)
    layer = catalog.gzip.layers[0]
    command = [sys.executable, "-m", "layerpeek.cli", "ls", "--layer", "0", "--json"]
    command.append(catalog.gzip.ref(fault_proxy.host))
    outputs = []
    for _ in range(2):
        fault_proxy.reset()
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append([json.loads(line)["path"] for line in done.stdout.splitlines()])
    assert outputs[0] == outputs[1] and len(outputs[0]) == len(layer.entries)
    assert fault_proxy.body_bytes(_blob(layer.digest)) == 0  # counted for the second run only


def test_several_processes_write_at_once(redis_url):
    writer = textwrap.dedent(
        """
        import sys
        import anyio
        from layerpeek.core.cache.redis_store import RedisCache

        async def write() -> None:
            store = RedisCache(sys.argv[1])
            for i in range(200):
                await store.put("config", f"sha256:{sys.argv[2]}{i}", b"x" * 1000)
            await store.close()

        anyio.run(write)
        """
    )
    children = [subprocess.Popen([sys.executable, "-c", writer, redis_url, n]) for n in "abc"]
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0]

    async def read_all() -> bool:
        store = RedisCache(redis_url)
        found = [await store.get("config", f"sha256:{n}{i}") for n in "abc" for i in range(200)]
        await store.close()
        return found == [b"x" * 1000] * 600

    assert anyio.run(read_all)
