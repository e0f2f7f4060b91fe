"""The SQLite cache on its own: round trips, checksums, LRU eviction, several
processes writing at once, and layer indexes that decode exactly or not at all."""

from __future__ import annotations

import sqlite3
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from layerpeek.core.cache import sqlite as cache_module
from layerpeek.core.cache.sqlite import FILE_NAME, AsyncCache, Cache
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.layers import checkpoints
from layerpeek.core.layers.checkpoints import WINDOW, Checkpoint
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.layers.index.encoding import ROWS_PER_LINE, IndexEncoder
from layerpeek.core.layers.index.model import LayerIndex


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Cache]:
    cache = Cache(tmp_path)
    yield cache
    cache.close()


def test_payloads_round_trip_by_kind_and_digest(store):
    store.put("config", "sha256:a", b"config bytes")
    store.put("manifest", "sha256:a", b"manifest bytes")
    assert store.get("config", "sha256:a") == b"config bytes"
    assert store.get("manifest", "sha256:a") == b"manifest bytes"
    assert store.get("index", "sha256:a") is None


def test_a_corrupt_payload_is_dropped_not_served(store, tmp_path):
    store.put("index", "sha256:a", b"the real index")
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        db.execute("UPDATE blobs SET payload = ? WHERE digest = 'sha256:a'", (b"the real indeX",))
    assert store.get("index", "sha256:a") is None
    assert store.stored_bytes() == 0  # the row is gone: the next put rebuilds it
    store.put("index", "sha256:a", b"the real index")
    assert store.get("index", "sha256:a") == b"the real index"


def test_least_recently_used_payloads_are_evicted_first(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_TOUCH_INTERVAL", 0.0)
    store = Cache(tmp_path, max_bytes=250)
    store.put("config", "sha256:a", b"a" * 100)
    store.put("config", "sha256:b", b"b" * 100)
    assert store.get("config", "sha256:a") is not None  # a is now more recent than b
    store.put("config", "sha256:c", b"c" * 100)
    assert store.get("config", "sha256:b") is None
    assert store.get("config", "sha256:a") == b"a" * 100
    assert store.get("config", "sha256:c") == b"c" * 100
    assert store.stored_bytes() == 200
    store.close()


def test_a_payload_larger_than_the_whole_cache_is_not_kept(tmp_path):
    store = Cache(tmp_path, max_bytes=10)
    store.put("config", "sha256:a", b"x" * 11)
    assert store.get("config", "sha256:a") is None
    store.close()


def test_several_processes_write_at_once(tmp_path):
    writer = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from layerpeek.core.cache.sqlite import Cache
        store = Cache(Path(sys.argv[1]))
        for i in range(200):
            store.put("config", f"sha256:{sys.argv[2]}{i}", b"x" * 1000)
        """
    )
    children = [
        subprocess.Popen([sys.executable, "-c", writer, str(tmp_path), name]) for name in "abc"
    ]
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0]
    store = Cache(tmp_path)
    assert all(store.get("config", f"sha256:{n}{i}") for n in "abc" for i in range(200))
    store.close()


def test_an_unusable_cache_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(LayerpeekError, match="LAYERPEEK_CACHE_DIR"):
        Cache(blocker / "cache")


async def test_the_async_cache_runs_in_worker_threads(tmp_path):
    cache = AsyncCache(tmp_path)
    await cache.put("config", "sha256:a", b"bytes")
    assert await cache.get("config", "sha256:a") == b"bytes"
    await cache.close()


async def test_the_async_cache_closes_and_reopens_on_next_use(tmp_path):
    cache = AsyncCache(tmp_path)
    await cache.close()  # never opened: nothing to do
    await cache.put("config", "sha256:a", b"bytes")
    await cache.close()
    assert await cache.get("config", "sha256:a") == b"bytes"
    await cache.close()


def test_a_layer_index_decodes_to_exactly_what_was_stored():
    entries = [
        TarEntry("etc/passwd", "file", 12, 0o644, 0, 0, 1_700_000_000, "", 512),
        TarEntry("bad-\udcff-name\n", "symlink", 0, 0o777, 1000, 1000, 0, "../../x", 1536),
        TarEntry("opt/.wh..wh..opq", "opaque", 0, 0o644, 0, 0, 0, "", 2048),
    ]
    point = Checkpoint(4_000_123, 4_194_400, 5, bytes(range(256)) * 128)
    index = LayerIndex("sha256:abc", "gzip", entries, [point], [(0, 0), (900, 4_194_304)])
    again = LayerIndex.from_bytes(index.to_bytes(), "sha256:abc")
    assert again == index


def _growing_index(entries: int, points: int) -> LayerIndex:
    rows = [
        TarEntry(f"usr/lib/f{i}", "file", i, 0o644, 0, 0, 0, "", 512 * (2 * i + 1))
        for i in range(entries)
    ]
    windows = [
        Checkpoint(1000 * (i + 1), 4_194_304 * (i + 1), i % 8, bytes([i]) * WINDOW)
        for i in range(points)
    ]
    return LayerIndex("sha256:abc", "gzip", rows, windows)


def test_an_index_encoded_while_it_grew_is_the_one_encoded_at_once():
    whole = _growing_index(2 * ROWS_PER_LINE + 7, 5)
    encoder = IndexEncoder()
    for entries, points in [
        (10, 0),
        (ROWS_PER_LINE, 1),
        (ROWS_PER_LINE + 3, 1),
        (2 * ROWS_PER_LINE, 4),
    ]:
        encoder.catch_up(whole.entries[:entries], whole.checkpoints[:points])
    assert encoder.finish(whole) == whole.to_bytes()
    assert LayerIndex.from_bytes(encoder.finish(whole), "sha256:abc") == whole


@pytest.mark.parametrize("cut", [1, 7, 100], ids=lambda cut: f"{cut}-bytes-short")
def test_cut_checkpoint_data_is_refused(cut):
    data = checkpoints.encode(_growing_index(0, 3).checkpoints)
    with pytest.raises((ValueError, zlib.error, struct.error)):
        checkpoints.decode(data[:-cut])


def test_a_checkpoint_window_of_the_wrong_size_is_refused():
    point = Checkpoint(10, 20, 3, b"short")
    with pytest.raises(ValueError, match="malformed"):
        checkpoints.decode(checkpoints.encode([point]))


@pytest.mark.parametrize(
    "data",
    [b"", b"not zlib", b"x\x9c\x03\x00\x00\x00\x00\x01"],
    ids=["empty", "junk", "empty-zlib"],
)
def test_an_undecodable_index_is_a_miss(data):
    assert LayerIndex.from_bytes(data, "sha256:abc") is None


def test_an_index_stored_under_another_digest_is_a_miss():
    index = LayerIndex("sha256:abc", "none", [])
    assert LayerIndex.from_bytes(index.to_bytes(), "sha256:def") is None


def test_a_database_error_is_a_miss_not_a_failure(tmp_path):
    store = Cache(tmp_path)
    store.put("config", "sha256:a", b"kept")
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        db.execute("DROP TABLE blobs")
    assert store.get("config", "sha256:a") is None
    store.put("config", "sha256:b", b"not kept")  # no table: the write is skipped quietly
    store.close()
