"""Paying for what is looked at: first pages, pages that continue, the layer index in the
cache, resume mid-listing and mid-pull, `cat` by range. Every cost is counted in body bytes
the fault proxy sent for the blob, in front of the real registry."""

from __future__ import annotations

import gzip
import random
import re
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import pytest
import zstandard

from fixtures.images import (
    OCI_LAYER_ZSTD,
    Layer,
    Member,
    Pusher,
    build_tar,
    image_config,
    make_layer,
    seeded_bytes,
    sha256_digest,
)
from layerpeek.core.cache.interface import key_for
from layerpeek.core.cache.sqlite import FILE_NAME
from layerpeek.core.errors import CorruptLayer, FileNotInLayer, TruncatedLayer
from layerpeek.core.layers import checkpoints, zlib_native
from layerpeek.core.layers.checkpoints import (
    SPACING,
    WINDOW,
    CheckpointInflater,
    Resume,
    decode,
    encode,
    end_for,
    nearest,
)
from layerpeek.core.layers.reader import FIRST_WINDOW
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek

FILES = 1500
FILE_SIZE = 3000  # incompressible: the blob is ~5 MB, the first 10 headers are in ~35 KB


@dataclass(frozen=True)
class Wide:
    """One image per compression, each a single layer of FILES files."""

    refs: dict[str, str]
    layers: dict[str, object]

    def ref(self, host: str, kind: str) -> str:
        return f"{host}/{self.refs[kind]}"


@pytest.fixture(scope="module")
def wide(plain_registry) -> Wide:
    members = [
        Member(f"data/file-{i:05d}.bin", data=seeded_bytes(i, FILE_SIZE)) for i in range(FILES)
    ]
    refs, layers = {}, {}
    with Pusher(plain_registry.url) as pusher:
        for kind in ("gzip", "none"):
            layer = make_layer(members, kind)
            pusher.image(
                f"test/wide-{kind}",
                ["latest"],
                [(layer.blob, layer.media_type)],
                image_config([layer]),
            )
            refs[kind], layers[kind] = f"test/wide-{kind}:latest", layer
        layers["frames"] = zstd_frames(members, 1 << 20)
        data, media_type = layers["frames"].blob, layers["frames"].media_type
        pusher.image(
            "test/wide-frames", ["latest"], [(data, media_type)], image_config([layers["frames"]])
        )
        refs["frames"] = "test/wide-frames:latest"
        # Damage well past the point where the scan starts reading ahead (prefetch).
        good = layers["gzip"].blob
        at = len(good) * 9 // 10
        damaged = {"cut": good[:at], "corrupt": good[:at] + bytes(4096) + good[at + 4096 :]}
        for kind, data in damaged.items():
            bad = replace(layers["gzip"], blob=data)
            pusher.image(
                f"test/wide-{kind}", ["latest"], [(data, bad.media_type)], image_config([bad])
            )
            refs[kind], layers[kind] = f"test/wide-{kind}:latest", bad
    return Wide(refs, layers)


def zstd_frames(members: list[Member], frame: int) -> Layer:
    """A zstd layer of one frame per ``frame`` bytes of tar, as multi-threaded zstd writes."""
    tar = build_tar(members)
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
    data = b"".join(compressor.compress(tar[i : i + frame]) for i in range(0, len(tar), frame))
    files = {m.entry.path: m.data for m in members}
    return Layer(data, OCI_LAYER_ZSTD, sha256_digest(tar), tuple(m.entry for m in members), files)


def blob(layer) -> str:
    return rf"/blobs/{re.escape(layer.digest)}$"


async def open_image(peek: Layerpeek, wide: Wide, host: str, kind: str = "gzip"):
    return await peek.resolve(wide.ref(host, kind))


def paths(page) -> list[str]:
    return [e.path for e in page.entries]


async def test_first_page_costs_one_small_window(peek, fault_proxy, wide):
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    page = await peek.list_page(image, 0, limit=10)
    assert paths(page) == [e.path for e in layer.entries[:10]]
    assert fault_proxy.body_bytes(blob(layer)) <= FIRST_WINDOW < layer.size / 10
    assert not page.complete and page.next_start == 10
    assert page.layer == 0 and page.layer_bytes == layer.size
    assert 0 < page.scanned_bytes <= FIRST_WINDOW


async def test_next_pages_continue_without_reading_again(peek, fault_proxy, wide):
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    listed, start, pages = [], 0, []
    while start is not None:
        page = await peek.list_page(image, 0, start=start, limit=400)
        pages.append(page)
        listed += paths(page)
        start = page.next_start
    assert listed == [e.path for e in layer.entries]
    assert fault_proxy.body_bytes(blob(layer)) == layer.size  # each byte once
    assert [p.complete for p in pages] == [False] * (len(pages) - 1) + [True]
    scanned = [p.scanned_bytes for p in pages]
    assert scanned == sorted(scanned) and scanned[-1] == layer.size


async def test_the_last_page_is_found_and_read_in_one_pass(peek, fault_proxy, wide):
    """The bot's "last page" button: the listing is counted and its tail answered from one
    reading of the layer (each byte downloaded once)."""
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    page = await peek.list_page(image, 0, start=0, limit=400, last=True)
    assert page.start == (FILES - 1) // 400 * 400 and page.complete and page.next_start is None
    assert paths(page) == [e.path for e in layer.entries[page.start :]]
    assert fault_proxy.body_bytes(blob(layer)) == layer.size


async def test_a_listed_layer_is_listed_again_from_the_cache(layerpeek_env, fault_proxy, wide):
    layer = wide.layers["gzip"]
    async with RegistryClient() as client:
        peek = Layerpeek(client)
        image = await open_image(peek, wide, fault_proxy.host)
        first = [e async for e in peek.entries(image, 0)]
    fault_proxy.reset()
    async with RegistryClient() as client:  # a new process would start just like this
        peek = Layerpeek(client)
        image = await open_image(peek, wide, fault_proxy.host)
        again = [e async for e in peek.entries(image, 0)]
        page = await peek.list_page(image, 0, start=1490, limit=20)
    assert again == first and len(first) == FILES
    assert page.complete and page.scanned_bytes == layer.size
    assert fault_proxy.body_bytes(blob(layer)) == 0
    # The registry is still asked what the tag means now (a HEAD); the body is cached.
    manifests = [r.method for r in fault_proxy.requests if "/manifests/" in r.path]
    assert manifests == ["HEAD"]


async def test_a_corrupt_cached_index_is_rebuilt_not_served(layerpeek_env, fault_proxy, wide):
    layer = wide.layers["gzip"]
    async with RegistryClient() as client:
        peek = Layerpeek(client)
        image = await open_image(peek, wide, fault_proxy.host)
        first = [e async for e in peek.entries(image, 0)]
        database = Path(client.settings.cache_dir) / FILE_NAME
    with sqlite3.connect(database) as db:
        db.execute("UPDATE blobs SET payload = zeroblob(size) WHERE kind = 'index'")
    fault_proxy.reset()
    async with RegistryClient() as client:
        peek = Layerpeek(client)
        image = await open_image(peek, wide, fault_proxy.host)
        again = [e async for e in peek.entries(image, 0)]
    assert again == first
    assert fault_proxy.body_bytes(blob(layer)) == layer.size


async def test_a_listing_survives_cut_connections(peek, fault_proxy, wide):
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    fault_proxy.cut_after(blob(layer), 150_000, times=4)
    listed = [e.path async for e in peek.entries(image, 0)]
    assert listed == [e.path for e in layer.entries]
    assert fault_proxy.body_bytes(blob(layer)) == layer.size
    assert [r.fault for r in fault_proxy.requests if layer.digest in r.path][:4] == ["cut"] * 4


async def test_a_pull_survives_cut_connections(peek, fault_proxy, wide, tmp_path):
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    fault_proxy.cut_after(blob(layer), 1_000_000, times=3)
    result = await peek.pull_layer(image, 0, tmp_path / "layer.tar.gz")
    assert (tmp_path / "layer.tar.gz").read_bytes() == layer.blob
    assert result.digest == layer.digest


async def test_cat_in_an_indexed_plain_layer_is_one_range(peek, fault_proxy, wide):
    layer = wide.layers["none"]
    image = await open_image(peek, wide, fault_proxy.host, "none")
    [_ async for _ in peek.entries(image, 0)]
    fault_proxy.reset()
    path = layer.entries[-3].path
    data = b"".join([c async for c in peek.read_file(image, path)])
    assert data == layer.files[path]
    assert fault_proxy.body_bytes(blob(layer)) == FILE_SIZE
    assert len([r for r in fault_proxy.requests if layer.digest in r.path]) == 1


async def test_cat_of_a_missing_path_in_an_indexed_layer_reads_nothing(peek, fault_proxy, wide):
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    [_ async for _ in peek.entries(image, 0)]
    fault_proxy.reset()
    with pytest.raises(FileNotInLayer, match="not a file in any layer"):
        [_ async for _ in peek.read_file(image, "data/nope")]
    assert fault_proxy.body_bytes(blob(layer)) == 0


async def test_cat_in_an_indexed_gzip_layer_is_one_range_from_a_checkpoint(peek, fault_proxy, wide):
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    [_ async for _ in peek.entries(image, 0)]
    index = await peek.indexes.cached(layer.digest, key_for(image.reference, layer.digest))
    assert len(index.checkpoints) == FILES * (FILE_SIZE + 1024) // SPACING
    fault_proxy.reset()
    for path in (layer.entries[-2].path, layer.entries[-200].path):
        assert b"".join([c async for c in peek.read_file(image, path)]) == layer.files[path]
    requests = [r for r in fault_proxy.requests if layer.digest in r.path]
    assert len(requests) == 2
    assert fault_proxy.body_bytes(blob(layer)) < layer.size / 2


async def test_cat_before_the_first_checkpoint_streams_to_the_file(peek, fault_proxy, wide):
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    [_ async for _ in peek.entries(image, 0)]
    path = layer.entries[5].path
    assert b"".join([c async for c in peek.read_file(image, path)]) == layer.files[path]


def test_checkpoints_resume_anywhere_with_identical_bytes():
    text = b" ".join(b"word%d" % (i * 7919 % 10007) for i in range(400_000))
    compressed = gzip.compress(text, 6)
    inflater = CheckpointInflater(spacing=1 << 18)
    out = b"".join(
        p
        for i in range(0, len(compressed), 50_000)
        for p in inflater.feed(compressed[i : i + 50_000])
    )
    inflater.finish()
    assert out == text and len(inflater.checkpoints) >= 5
    assert {p.bits for p in inflater.checkpoints} != {0}  # leftover bits are exercised
    points = decode(encode(inflater.checkpoints))
    for offset in range(points[0].uncompressed, len(text) - 100, 177_777):
        point = nearest(points, offset)
        resume = Resume(point)
        data = compressed[point.fetch_from : end_for(points, offset + 100)]
        got = b"".join(resume.feed(data))
        resume.close()
        start = offset - point.uncompressed
        assert got[start : start + 100] == text[offset : offset + 100]


def test_checkpoints_sit_at_the_same_places_with_the_output_before_them_as_windows():
    """However the input arrives (calls writing less than a window each, or several
    checkpoints' worth), the checkpoints are the same, and each window is the 32 KiB of
    output before its checkpoint. Random letters make deflate blocks of ~16 KB of output,
    so block boundaries come soon after each point where a checkpoint is due."""
    text = bytes(random.Random(7).choices(b"abcdefghijklmnopqrstuvwxyz", k=2_000_000))
    compressed = gzip.compress(text, 6)
    found = []
    for feed in (997, 20_000, 50_000, 1 << 20):
        inflater = CheckpointInflater(spacing=1 << 18)
        for i in range(0, len(compressed), feed):
            for _ in inflater.feed(compressed[i : i + feed]):
                pass
        inflater.finish()
        found.append(inflater.checkpoints)
    assert len(found[0]) >= 5 and all(points == found[0] for points in found)
    assert [p.uncompressed for p in found[0]] == _first_boundaries_past(compressed, 1 << 18)
    for point in found[0]:
        assert point.window == text[point.uncompressed - WINDOW : point.uncompressed]


def _first_boundaries_past(compressed: bytes, spacing: int) -> list[int]:
    """Where checkpoints belong: inflating block by block (``Z_BLOCK``), the first block
    boundary at least ``spacing`` bytes of output after the last one taken."""
    inflate = checkpoints._Inflate(checkpoints._GZIP_WBITS, 1 << 22)
    inflate.give(compressed)
    taken, out = [0], 0
    while True:
        code, written = inflate.run(checkpoints._Z_BLOCK)
        inflate.lend()
        out += len(written)
        boundary = inflate.stream.data_type & 128 and not inflate.stream.data_type & 64
        if boundary and out - taken[-1] >= spacing:
            taken.append(out)
        if code == checkpoints._Z_STREAM_END:
            inflate.end()
            return taken[1:]


def _checkpoints_and_resumed(monkeypatch, build, resume, compressed, offsets):
    """Checkpoints recorded with the zlib ``build``, then data resumed with ``resume``."""
    monkeypatch.setattr(checkpoints, "_ZLIB", build)
    inflater = CheckpointInflater(spacing=1 << 18)
    for i in range(0, len(compressed), 70_000):
        for _ in inflater.feed(compressed[i : i + 70_000]):
            pass
    inflater.finish()
    monkeypatch.setattr(checkpoints, "_ZLIB", resume)
    resumed = []
    for offset in offsets:
        point = nearest(inflater.checkpoints, offset)
        decoder = Resume(point)
        end = end_for(inflater.checkpoints, offset + 100)
        got = b"".join(decoder.feed(compressed[point.fetch_from : end]))
        decoder.close()
        resumed.append(got[offset - point.uncompressed :][:100])
    return inflater.checkpoints, resumed


def test_checkpoints_from_zlib_ng_and_system_zlib_are_the_same_and_interchangeable(monkeypatch):
    zlib_ng = zlib_native.zlib_ng()
    assert zlib_ng is not None  # the zlib-ng package is a dependency: the fast path loads
    system = zlib_native.system_zlib()
    text = b" ".join(b"w%d" % (i * 7919 % 10007) for i in range(600_000))
    compressed = gzip.compress(text, 6)
    offsets = range(700_000, len(text) - 100, 333_333)
    expected = [text[o : o + 100] for o in offsets]
    fast, resumed_by_system = _checkpoints_and_resumed(
        monkeypatch, zlib_ng, system, compressed, offsets
    )
    slow, resumed_by_fast = _checkpoints_and_resumed(
        monkeypatch, system, zlib_ng, compressed, offsets
    )
    assert len(fast) >= 5 and fast == slow
    assert resumed_by_system == expected == resumed_by_fast


async def test_a_registry_that_ignores_range_still_lists(peek, fault_proxy, wide):
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    headers = {"Content-Type": "application/octet-stream"}
    fault_proxy.inject(blob(layer), 200, headers, layer.blob)
    listed = [e.path async for e in peek.entries(image, 0)]
    assert listed == [e.path for e in layer.entries]
    assert len([r for r in fault_proxy.requests if layer.digest in r.path]) == 1


async def test_progress_counts_bytes_and_entries(peek, fault_proxy, wide):
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    seen = []
    [_ async for _ in peek.entries(image, 0, on_progress=seen.append)]
    assert [p.bytes_read for p in seen] == sorted(p.bytes_read for p in seen)
    assert seen[-1].bytes_read == seen[-1].total == layer.size
    assert seen[-1].entries == FILES


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [("cut", TruncatedLayer, "ends early"), ("corrupt", CorruptLayer, "corrupt gzip")],
)
async def test_a_damaged_blob_fails_after_listing_the_entries_before_the_damage(
    peek, fault_proxy, wide, kind, error, message
):
    image = await open_image(peek, wide, fault_proxy.host, kind)
    listed = []
    with pytest.raises(error, match=message):
        async for entry in peek.entries(image, 0):
            listed.append(entry.path)
    expected = [e.path for e in wide.layers["gzip"].entries]
    assert listed == expected[: len(listed)] and len(listed) > FILES // 2


async def test_cat_in_an_indexed_multi_frame_zstd_layer_starts_at_a_frame(peek, fault_proxy, wide):
    layer = wide.layers["frames"]
    image = await open_image(peek, wide, fault_proxy.host, "frames")
    listed = [e.path async for e in peek.entries(image, 0)]
    assert listed == [e.path for e in layer.entries]
    index = await peek.indexes.cached(layer.digest, key_for(image.reference, layer.digest))
    assert [u for _, u in index.frames] == [0, SPACING]
    fault_proxy.reset()
    path = layer.entries[-2].path
    assert b"".join([c async for c in peek.read_file(image, path)]) == layer.files[path]
    assert len([r for r in fault_proxy.requests if layer.digest in r.path]) == 1
    assert fault_proxy.body_bytes(blob(layer)) < layer.size / 2


def starts(proxy, layer) -> list[int]:
    """The first byte each blob request asked for, in order."""
    ranges = [r.range for r in proxy.requests if re.search(blob(layer), r.path)]
    return [int(r.partition("=")[2].partition("-")[0]) for r in ranges if r]


async def test_the_first_cat_lists_the_layer_once_and_the_next_costs_a_range(
    peek, fault_proxy, wide
):
    # Which copy a path names needs the whole listing (a later entry of the same name wins):
    # the first read lists the layer once and indexes it; every later read is one range.
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    first, behind = layer.entries[3].path, layer.entries[-250].path
    assert b"".join([c async for c in peek.read_file(image, first)]) == layer.files[first]
    assert fault_proxy.body_bytes(blob(layer)) < layer.size * 5 // 4
    assert (
        await peek.indexes.cached(layer.digest, key_for(image.reference, layer.digest))
    ) is not None
    fault_proxy.reset()
    assert b"".join([c async for c in peek.read_file(image, behind)]) == layer.files[behind]
    assert len(starts(fault_proxy, layer)) == 1
    assert fault_proxy.body_bytes(blob(layer)) < layer.size / 4


async def test_a_listing_cancelled_while_inflating_ahead_leaves_the_next_one_whole(
    peek, fault_proxy, wide
):
    # A whole listing inflates ahead from the first byte, so the pump runs when it is cancelled.
    layer = wide.layers["gzip"]
    image = await open_image(peek, wide, fault_proxy.host)
    seen = 0
    with anyio.CancelScope() as scope:
        async for _ in peek.entries(image, 0, whole=True):
            seen += 1
            if seen == 500:
                scope.cancel()
    # Entries already found are handed on; the cancellation lands at the next await: in a
    # step (the scan is dropped and the next listing starts over) or between steps (the
    # next listing continues it).
    assert scope.cancelled_caught and 500 <= seen < FILES
    listed = [e.path async for e in peek.entries(image, 0)]
    assert listed == [e.path for e in layer.entries]
    page = await peek.list_page(image, 0, start=1490, limit=20)
    assert page.complete  # the scan reached the end and stored the index


@pytest.mark.parametrize("kind", ["gzip", "none", "frames"])
async def test_a_whole_listing_inflates_ahead_from_the_first_byte_and_lists_exactly(
    peek, fault_proxy, wide, kind
):
    # The pump starts before the compression is known: the inflater thread detects it.
    layer = wide.layers[kind]
    image = await open_image(peek, wide, fault_proxy.host, kind)
    listed = [e async for e in peek.entries(image, 0, whole=True)]
    assert [e.path for e in listed] == [e.path for e in layer.entries]
    assert fault_proxy.body_bytes(blob(layer)) == layer.size  # each byte once
    fault_proxy.reset()
    assert [e async for e in peek.entries(image, 0)] == listed  # from the stored index
    assert fault_proxy.body_bytes(blob(layer)) == 0
