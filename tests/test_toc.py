"""eStargz and zstd:chunked: listing from the TOC, reading one file by its chunks.

The pure tests read blobs built by tests/fixtures/toc_images.py through an in-memory fetcher
that counts requests and bytes; the registry tests push the same kind of blobs and count the
bytes the registry side really sent, through the fault proxy.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import json
import struct
import tarfile
from collections.abc import Callable, Iterator, Mapping

import pytest
import zstandard

from fixtures.images import Member, Pusher, make_layer, seeded_bytes, sha256_digest
from fixtures.toc_images import (
    ESTARGZ_TOC_DIGEST,
    ZSTD_CHECKSUM,
    ZSTD_POSITION,
    TocLayer,
    estargz_footer,
    make_estargz,
    make_zstd_chunked,
    push_toc_image,
)
from layerpeek.core.errors import CorruptLayer, DigestMismatch, FileNotInLayer, LayerTooLarge
from layerpeek.core.layers.entry import LAYER_LIMITS, NAME_LIMIT, TarEntry
from layerpeek.core.layers.scan import scan_layer
from layerpeek.core.layers.toc import files as toc_files
from layerpeek.core.layers.toc import model as toc_model
from layerpeek.core.layers.toc.files import read_toc_file
from layerpeek.core.layers.toc.footer import read_toc
from layerpeek.core.layers.toc.jsonstream import parse_toc
from layerpeek.core.layers.toc.model import TOC_ARTIFACTS, Toc
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek

CHUNK = 64 << 10
BIG = seeded_bytes(7, 5 * CHUNK + 1234)  # six chunks, the last one short
BALLAST = seeded_bytes(8, 1 << 20)  # incompressible bulk, so a TOC is a small fraction
MEMBERS = (
    Member("etc", "dir"),
    Member("etc/hosts", data=b"127.0.0.1 localhost\n", uid=1000, gid=1000, mode=0o600),
    Member("etc/empty", data=b""),
    Member("etc/.wh.passwd", data=b""),
    Member("opt/app/.wh..wh..opq", data=b""),
    Member("usr/bin/big", data=BIG, mode=0o755),
    Member("usr/share/ballast", data=BALLAST),
    Member("usr/bin/sh", "symlink", link="big"),
    Member("usr/bin/big2", "hardlink", link="usr/bin/big"),
    Member("dev/null", "char", devmajor=1, devminor=3),
    Member("run/pipe", "fifo"),
    Member("small/one.txt", data=b"one\n" * 30),
    Member("small/two.txt", data=b"two\n" * 40),
    Member("./dot/relative.txt", data=b"a path written with ./\n"),
)

Make = Callable[[], TocLayer]
FORMATS: Mapping[str, Make] = {
    "estargz": lambda: make_estargz(MEMBERS, chunk_size=CHUNK),
    "estargz-small-chunks-shared": lambda: make_estargz(
        MEMBERS, chunk_size=CHUNK, min_chunk_size=4096, prefetch=("etc/hosts",)
    ),
    "stargz-legacy-footer": lambda: make_estargz(MEMBERS, chunk_size=CHUNK, legacy_footer=True),
    "zstd-chunked": lambda: make_zstd_chunked(MEMBERS, chunk_size=CHUNK),
    "zstd-chunked-no-annotations": lambda: make_zstd_chunked(
        MEMBERS, chunk_size=CHUNK, annotate=False
    ),
    "zstd-chunked-old-footer": lambda: make_zstd_chunked(
        MEMBERS, chunk_size=CHUNK, annotate=False, old_footer=True
    ),
}


@functools.cache
def build(name: str) -> TocLayer:
    """Each format's blob, built once per session (the builders are pure)."""
    return FORMATS[name]()


# Requests a listing costs: footer + TOC, except zstd:chunked with its position annotation.
LISTING_REQUESTS = {name: 1 if name == "zstd-chunked" else 2 for name in FORMATS}


class MemoryBlob:
    """A range fetcher over bytes in memory that records every request it answers."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.requests: list[tuple[int, int]] = []
        self.sent = 0

    async def fetch(self, start: int, end: int) -> bytes:
        data = self.blob[start:] if start < 0 else self.blob[start : end + 1]
        self.requests.append((start, end))
        self.sent += len(data)
        return data

    def reset(self) -> None:
        self.requests.clear()
        self.sent = 0


@pytest.fixture(scope="module", params=list(FORMATS))
def built(request: pytest.FixtureRequest) -> tuple[str, TocLayer]:
    return request.param, build(request.param)


def listed(entries: tuple[TarEntry, ...] | list[TarEntry]) -> list[tuple[str, str, int, str]]:
    return [(e.path, e.type, e.size, e.link) for e in entries]


def typed(entries) -> list[tuple[str, str, int, str]]:
    """Fixture entries as a listing reports them: whiteout markers typed by their basename."""
    result = []
    for entry in entries:
        name = entry.path.rpartition("/")[2]
        kind = "opaque" if name == ".wh..wh..opq" else "whiteout" if ".wh." in name else entry.type
        result.append((entry.path, kind, entry.size, entry.link))
    return result


def expected_listing(layer: TocLayer) -> list[tuple[str, str, int, str]]:
    """The fixture's members minus the format's own entries."""
    return typed(layer.layer.entries)


async def read_all(fetch, toc: Toc, path: str) -> bytes:
    return b"".join([piece async for piece in read_toc_file(fetch, toc, path)])


async def scanned(blob: bytes) -> list[TarEntry]:
    async def chunks():
        for start in range(0, len(blob), 100_000):
            yield blob[start : start + 100_000]

    return [event async for event in scan_layer(chunks()) if isinstance(event, TarEntry)]


# -- listing -------------------------------------------------------------------------------


async def test_listing_is_exactly_the_files_for_the_footer_and_toc_only(built):
    name, layer = built
    memory = MemoryBlob(layer.blob)
    toc = await read_toc(memory.fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    assert listed(toc.entries) == expected_listing(layer)
    assert len(memory.requests) == LISTING_REQUESTS[name]
    assert memory.sent < len(layer.blob) * 0.01


async def test_toc_layers_are_plain_layers_listing_the_same_entries(built):
    _, layer = built
    plain = await scanned(layer.blob)
    assert listed(plain) == typed(layer.scan_entries)
    toc = await read_toc(MemoryBlob(layer.blob).fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    # Every field the tar header holds (mode, owner, mtime) agrees; tar offsets a TOC lacks.
    shown = [e._replace(offset=0) for e in plain if e.path not in TOC_ARTIFACTS]
    assert list(toc.entries) == shown


async def test_the_format_is_detected_and_the_estargz_digest_is_its_annotation(built):
    name, layer = built
    toc = await read_toc(MemoryBlob(layer.blob).fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    assert toc.format == ("zstd:chunked" if name.startswith("zstd") else "estargz")
    if toc.format == "estargz":
        assert toc.digest == layer.annotations[ESTARGZ_TOC_DIGEST]


async def test_prefetch_landmark_and_toc_entry_are_hidden():
    layer = build("estargz-small-chunks-shared")
    plain = {e.path for e in await scanned(layer.blob)}
    assert {".prefetch.landmark", "stargz.index.json"} <= plain
    toc = await read_toc(MemoryBlob(layer.blob).fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    assert not {e.path for e in toc.entries} & TOC_ARTIFACTS


# -- reading one file ----------------------------------------------------------------------


async def test_every_file_reads_back_exactly(built):
    _, layer = built
    memory = MemoryBlob(layer.blob)
    toc = await read_toc(memory.fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    regular = {path for path, kind, _, _ in expected_listing(layer) if kind == "file"}
    assert set(toc.files) == regular
    for path in regular:
        assert await read_all(memory.fetch, toc, path) == layer.layer.files[path]


async def test_a_file_costs_only_its_own_chunks_in_one_request(built):
    _, layer = built
    memory = MemoryBlob(layer.blob)
    toc = await read_toc(memory.fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    memory.reset()
    assert await read_all(memory.fetch, toc, "/usr/bin/big") == BIG
    chunks = toc.files["usr/bin/big"].chunks
    assert len(chunks) == 6
    assert memory.requests == [(chunks[0].offset, chunks[-1].end - 1)]
    assert memory.sent < len(BIG) + (64 << 10)  # its compressed data and, at most, a few headers
    assert memory.sent < len(layer.blob) // 2


async def test_requests_stay_within_the_window(built, monkeypatch):
    _, layer = built
    monkeypatch.setattr(toc_files, "WINDOW", 50_000)
    memory = MemoryBlob(layer.blob)
    toc = await read_toc(memory.fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    memory.reset()
    assert await read_all(memory.fetch, toc, "usr/share/ballast") == BALLAST
    assert len(memory.requests) > len(BALLAST) // 50_000
    assert all(end - start < 50_000 for start, end in memory.requests)


async def test_empty_file_costs_no_request(built):
    _, layer = built
    memory = MemoryBlob(layer.blob)
    toc = await read_toc(memory.fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    memory.reset()
    assert await read_all(memory.fetch, toc, "etc/empty") == b""
    assert memory.requests == []


async def test_what_is_not_a_regular_file_cannot_be_read(built):
    _, layer = built
    memory = MemoryBlob(layer.blob)
    toc = await read_toc(memory.fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    for path in ("etc", "usr/bin/sh", "usr/bin/big2", "no/such/file", "stargz.index.json"):
        with pytest.raises(FileNotInLayer):
            await read_all(memory.fetch, toc, path)


def _with_file(toc: Toc, path: str, **changes) -> Toc:
    files = dict(toc.files)
    files[path] = dataclasses.replace(files[path], **changes)
    return dataclasses.replace(toc, files=files)


async def test_content_that_fails_the_file_digest_is_refused(built):
    _, layer = built
    memory = MemoryBlob(layer.blob)
    toc = await read_toc(memory.fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch, match="etc/hosts"):
        await read_all(memory.fetch, _with_file(toc, "etc/hosts", digest=wrong), "etc/hosts")


async def test_a_chunk_that_fails_its_digest_is_refused_before_it_is_yielded(built):
    _, layer = built
    memory = MemoryBlob(layer.blob)
    toc = await read_toc(memory.fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    chunks = list(toc.files["usr/bin/big"].chunks)
    chunks[2] = dataclasses.replace(chunks[2], digest="sha256:" + "1" * 64)
    damaged = _with_file(toc, "usr/bin/big", chunks=tuple(chunks))
    received = bytearray()
    with pytest.raises(DigestMismatch, match="file offset 131,072"):
        async for piece in read_toc_file(memory.fetch, damaged, "usr/bin/big"):
            received += piece
    assert len(received) <= chunks[2].chunk_offset + chunks[2].size
    assert bytes(received[: chunks[2].chunk_offset]) == BIG[: chunks[2].chunk_offset]


async def test_a_chunk_span_cut_short_is_a_corrupt_layer(built):
    _, layer = built
    memory = MemoryBlob(layer.blob)
    toc = await read_toc(memory.fetch, len(layer.blob), layer.annotations)
    assert toc is not None
    chunks = list(toc.files["usr/bin/big"].chunks)
    chunks[0] = dataclasses.replace(chunks[0], end=chunks[0].offset + 1000)
    with pytest.raises(CorruptLayer, match="big"):
        await read_all(
            memory.fetch, _with_file(toc, "usr/bin/big", chunks=tuple(chunks)), "usr/bin/big"
        )


# -- no TOC, broken TOC --------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
async def test_a_plain_layer_has_no_toc_after_one_small_request(compression):
    layer = make_layer(MEMBERS, compression)
    memory = MemoryBlob(layer.blob)
    assert await read_toc(memory.fetch, len(layer.blob), {}) is None
    assert memory.requests == [(-72, len(layer.blob) - 1)]


async def test_a_blob_too_small_for_a_footer_costs_nothing():
    memory = MemoryBlob(b"\x1f\x8b" + bytes(20))
    assert await read_toc(memory.fetch, 22, {}) is None
    assert memory.requests == []


@pytest.mark.parametrize("name", ["estargz", "zstd-chunked"])
async def test_a_toc_that_fails_its_annotation_digest_is_a_corrupt_layer(name):
    layer = build(name)
    key = ESTARGZ_TOC_DIGEST if name == "estargz" else ZSTD_CHECKSUM
    annotations = {**layer.annotations, key: "sha256:" + "2" * 64}
    with pytest.raises(CorruptLayer, match="does not match its annotation digest"):
        await read_toc(MemoryBlob(layer.blob).fetch, len(layer.blob), annotations)


async def test_an_annotation_promising_a_toc_on_a_plain_layer_is_a_corrupt_layer():
    layer = make_layer(MEMBERS, "gzip")
    annotations = {ESTARGZ_TOC_DIGEST: "sha256:" + "3" * 64}
    with pytest.raises(CorruptLayer, match="no TOC footer"):
        await read_toc(MemoryBlob(layer.blob).fetch, len(layer.blob), annotations)


async def test_a_footer_pointing_outside_the_blob_is_a_corrupt_layer():
    layer = build("estargz")
    blob = layer.blob[:-51] + estargz_footer(len(layer.blob) + 10)
    with pytest.raises(CorruptLayer, match="points at"):
        await read_toc(MemoryBlob(blob).fetch, len(blob), {})


@pytest.mark.parametrize(
    "position", ["1:2:3", "a:b:c:1", "8:10:20:2", "99999999:10:20:1", "8:99999999:10:1"]
)
async def test_a_bad_manifest_position_is_a_corrupt_layer(position):
    layer = build("zstd-chunked")
    annotations = {**layer.annotations, ZSTD_POSITION: position}
    with pytest.raises(CorruptLayer):
        await read_toc(MemoryBlob(layer.blob).fetch, len(layer.blob), annotations)


async def test_a_corrupt_toc_member_is_a_corrupt_layer():
    layer = build("estargz")
    start = layer.toc_offset + 20
    blob = layer.blob[:start] + bytes(40) + layer.blob[start + 40 :]
    with pytest.raises(CorruptLayer, match="TOC"):
        await read_toc(MemoryBlob(blob).fetch, len(blob), {})


def _toc(entries: list[dict], version: int = 1) -> bytes:
    return json.dumps({"version": version, "entries": entries}).encode()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "version 1"),
        (_toc([], version=2), "version 1"),
        (_toc([{"name": "a", "type": "socket"}]), "unknown type"),
        (_toc([{"name": "a", "type": "reg", "size": -1}]), "bad size"),
        (_toc([{"name": "a", "type": "dir", "modtime": "yesterday"}]), "modtime"),
        (_toc([{"name": "a", "type": "chunk", "offset": 5}]), "follows no such file"),
        (_toc([{"name": "a", "type": "reg", "size": 10, "offset": 5, "chunkSize": 4}]), "cover"),
        (
            _toc(
                [
                    {"name": "a", "type": "reg", "size": 10, "offset": 5, "chunkSize": 4},
                    {"name": "a", "type": "chunk", "offset": 9, "chunkOffset": 6},
                ]
            ),
            "tile",
        ),
        (_toc([{"name": "a", "type": "reg", "size": 10, "offset": 500}]), "tile"),
        (b"", "not JSON"),
        (b'{"version": 1, "entries": [{"name": "a", "type": "dir"}', "not JSON"),
        (b'{"version": 1, "entries": [{"name": "a", "type": "dir"},', "not JSON"),
        (b'{"version": 1, "entries": []} {}', "not JSON"),
        (b'{"version": 1, 2: []}', "not JSON"),
        (b'{"version": 1, "entries": [{"name": "\xff"}]}', "not JSON"),
        (b'{"version": 1, "entries": [], "entries": []}', "version 1"),
        (b'{"entries": [], "version": 2}', "version 1"),
        (b'{"version": 1}', "version 1"),
        (b'{"version": 1, "entries": [1]}', "not an object"),
    ],
)
def test_malformed_toc_json_is_a_corrupt_layer(document, message):
    with pytest.raises(CorruptLayer, match=message) as raised:
        parse_toc("estargz", [document], 100)
    assert "\n" not in str(raised.value)


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[start : start + size] for start in range(0, len(data), size))


def _files(toc: Toc) -> dict[str, toc_model.TocFile]:
    return dict(toc.files)


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_toc_json_read_in_pieces_of_any_size_gives_the_same_toc(size):
    # Pieces cut through multi-byte characters, escapes, numbers and keys alike.
    entries = [
        {"name": "d/ünïcödé ✓", "type": "dir", "modtime": "2023-11-14T22:13:20Z"},
        {"name": 'd/"q\\uote"', "type": "reg", "size": 12345678, "offset": 9876543},
        {"name": "d/s", "type": "symlink", "linkName": "ünïcödé ✓", "uid": 65534},
    ]
    document = (
        b'{"count": 1234567, "version": 1, "entries": '
        + json.dumps(entries, ensure_ascii=False).replace(", ", " ,\n\t").encode()
        + b', "note": "a, b"}'
    )
    whole = parse_toc("zstd:chunked", [document], 99999999)
    cut = parse_toc("zstd:chunked", _pieces(document, size), 99999999)
    assert cut.entries == whole.entries
    assert cut.digest == whole.digest == sha256_digest(document)
    assert _files(cut) == _files(whole)
    assert [e.path for e in cut.entries] == ["d/ünïcödé ✓", 'd/"q\\uote"', "d/s"]


@pytest.mark.parametrize("name", ["estargz", "zstd-chunked"])
def test_a_real_toc_read_in_small_pieces_gives_the_same_toc(name):
    layer, format = build(name), "zstd:chunked" if name.startswith("zstd") else "estargz"
    whole = parse_toc(format, [layer.toc_json], layer.toc_offset)
    cut = parse_toc(format, _pieces(layer.toc_json, 1000), layer.toc_offset)
    assert cut.entries == whole.entries
    assert _files(cut) == _files(whole)


def test_a_bad_entry_is_refused_without_reading_the_rest_of_the_toc():
    pulled: list[bytes] = []

    def pieces() -> Iterator[bytes]:
        for piece in (b'{"version": 1, "entries": [{"name": "a", "type": "socket"},', b"{}]}"):
            pulled.append(piece)
            yield piece

    with pytest.raises(CorruptLayer, match="unknown type"):
        parse_toc("estargz", pieces(), 100)
    assert len(pulled) == 1


def test_a_path_written_twice_keeps_its_last_copy():
    document = _toc(
        [
            {"name": "a/f", "type": "reg", "size": 3, "offset": 10},
            {"name": "a/f", "type": "reg", "size": 5, "offset": 20},
        ]
    )
    toc = parse_toc("zstd:chunked", [document], 50)
    assert [(e.path, e.size) for e in toc.entries] == [("a/f", 3), ("a/f", 5)]
    assert len(toc.files) == 1
    assert toc.files["a/f"].chunks == (toc_model.TocChunk(20, 50, 0, 5),)


def test_a_toc_name_over_the_name_limit_is_listed_cut_marked_and_not_readable():
    long = "d/" + "ü" * 3000  # 6,002 bytes of UTF-8
    document = _toc(
        [
            {"name": long, "type": "reg", "size": 3, "offset": 10},
            {"name": "s", "type": "symlink", "linkName": "t" * 5000},
            {"name": "ok", "type": "reg", "size": 2, "offset": 20},
        ]
    )
    toc = parse_toc("estargz", [document], 50)
    assert [(len(e.path.encode()), len(e.link), e.cut) for e in toc.entries] == [
        (NAME_LIMIT, 0, True),
        (1, NAME_LIMIT, True),
        (2, 0, False),
    ]
    assert list(toc.files) == ["ok"]


def test_a_toc_listing_more_entries_than_a_layer_may_hold_is_refused():
    document = _toc([{"name": f"f{i}", "type": "dir"} for i in range(10)])
    limits = LAYER_LIMITS._replace(entries=4)
    with pytest.raises(LayerTooLarge) as raised:
        parse_toc("zstd:chunked", [document], 50, limits)
    assert str(raised.value) == "layer's zstd:chunked TOC has more than 4 entries (4 entries read)"


async def test_a_toc_over_the_size_limit_is_refused_before_it_is_fetched():
    layer = build("zstd-chunked")
    offset, compressed, _, kind = layer.annotations[ZSTD_POSITION].split(":")
    position = f"{offset}:{compressed}:{toc_model.MAX_TOC_BYTES + 1}:{kind}"
    blob = MemoryBlob(layer.blob)
    with pytest.raises(CorruptLayer) as raised:
        await read_toc(blob.fetch, len(layer.blob), {**layer.annotations, ZSTD_POSITION: position})
    assert str(raised.value) == (
        "zstd:chunked manifest of 52,428,801 bytes exceeds the 50 MiB TOC limit"
    )
    assert blob.requests == []


def _cut_short(toc_json: bytes) -> bytes:
    """The TOC JSON cut in the middle, as a writer that died or a damaged blob leaves it."""
    return toc_json[: len(toc_json) * 3 // 5]


def with_cut_toc(layer: TocLayer) -> TocLayer:
    """The same layer whose TOC JSON stops mid-entry, its annotations matching the cut TOC.

    eStargz: the TOC member is replaced by one holding the cut JSON. zstd:chunked: a manifest
    frame holding it is appended and the position annotation points there. Either blob is
    still a valid plain layer that scanning lists in full.
    """
    cut = _cut_short(layer.toc_json)
    if layer.layer.media_type.endswith("gzip"):
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as archive:
            info = tarfile.TarInfo(toc_model.ESTARGZ_TOC_NAME)
            info.size = len(cut)
            archive.addfile(info, io.BytesIO(cut))
        member = gzip.compress(tar.getvalue(), mtime=0)
        blob = layer.blob[: layer.toc_offset] + member + estargz_footer(layer.toc_offset)
        annotations = {ESTARGZ_TOC_DIGEST: sha256_digest(cut)}
    else:
        compressed = zstandard.ZstdCompressor().compress(cut)
        frame = struct.pack("<II", 0x184D2A50, len(compressed)) + compressed
        blob = layer.blob + frame
        offset = len(layer.blob) + 8
        annotations = {
            ZSTD_POSITION: f"{offset}:{len(compressed)}:{len(cut)}:1",
            ZSTD_CHECKSUM: sha256_digest(compressed),
        }
    return dataclasses.replace(
        layer,
        layer=dataclasses.replace(layer.layer, blob=blob),
        annotations=annotations,
        toc_json=cut,
    )


@pytest.mark.parametrize("name", ["estargz", "zstd-chunked"])
async def test_a_toc_cut_short_mid_stream_is_a_one_line_corrupt_layer(name):
    layer = with_cut_toc(build(name))
    assert len(layer.toc_json) > 1 << 10  # cut mid-document, after whole entries were read
    with pytest.raises(CorruptLayer, match="TOC is not JSON") as raised:
        await read_toc(MemoryBlob(layer.blob).fetch, len(layer.blob), layer.annotations)
    assert "\n" not in str(raised.value)


def test_toc_json_maps_types_paths_and_times_like_the_tar_scanner():
    document = _toc(
        [
            {"name": "./a/", "type": "dir", "mode": 0o40755, "modtime": "2023-11-14T22:13:20Z"},
            {
                "name": "a/f",
                "type": "reg",
                "size": 3,
                "offset": 10,
                "modtime": "2023-11-14T23:13:20.999999999+01:00",
            },
            {"name": "a/h", "type": "hardlink", "linkName": "./a/f"},
            {"name": "a/.wh.gone", "type": "reg"},
        ]
    )
    toc = parse_toc("zstd:chunked", [document], 50)
    assert [(e.path, e.type, e.mode, e.mtime, e.link) for e in toc.entries] == [
        ("a", "dir", 0o755, 1_700_000_000, ""),
        ("a/f", "file", 0, 1_700_000_000, ""),
        ("a/h", "hardlink", 0, 0, "a/f"),
        ("a/.wh.gone", "whiteout", 0, 0, ""),
    ]
    assert toc.files["a/f"].chunks == (toc_model.TocChunk(10, 50, 0, 3),)


# -- against the registry ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pushed(plain_registry) -> dict[str, tuple[str, TocLayer]]:
    """One-layer images whose layer descriptors carry the annotations, pushed once."""
    images = {
        "estargz": build("estargz"),
        "zstd-chunked": build("zstd-chunked"),
    }
    broken = build("estargz")
    images["estargz-wrong-digest"] = dataclasses.replace(
        broken, annotations={ESTARGZ_TOC_DIGEST: "sha256:" + "4" * 64}
    )
    plain = make_layer(MEMBERS, "gzip")
    images["plain-gzip"] = TocLayer(plain, {}, b"", 0, ())
    images["estargz-cut-toc"] = with_cut_toc(build("estargz"))
    images["zstd-chunked-cut-toc"] = with_cut_toc(build("zstd-chunked"))
    with Pusher(plain_registry.url) as pusher:
        for tag, layer in images.items():
            push_toc_image(pusher, "test/toc", tag, layer)
    return {tag: (f"test/toc:{tag}", layer) for tag, layer in images.items()}


@pytest.fixture
async def client(layerpeek_env):
    async with RegistryClient() as client:
        yield client


async def _open(client, fault_proxy, repo_tag: str):
    """Resolve through the proxy; returns a fetcher for the layer, its descriptor, its ref."""
    image = await Layerpeek(client).resolve(f"{fault_proxy.host}/{repo_tag}")
    descriptor = image.manifest.layers[0]

    async def fetch(start: int, end: int) -> bytes:
        return await client.fetch_range(image.reference, descriptor.digest, start, end)

    return fetch, descriptor


def _blob_requests(fault_proxy, digest: str):
    return [r for r in fault_proxy.requests if digest in r.path]


@pytest.mark.parametrize(("tag", "requests"), [("estargz", 2), ("zstd-chunked", 1)])
async def test_registry_listing_costs_the_footer_and_toc(
    client, fault_proxy, pushed, tag, requests
):
    repo_tag, layer = pushed[tag]
    fetch, descriptor = await _open(client, fault_proxy, repo_tag)
    assert descriptor.annotations == layer.annotations
    toc = await read_toc(fetch, descriptor.size, descriptor.annotations)
    assert toc is not None
    assert listed(toc.entries) == expected_listing(layer)
    sent = _blob_requests(fault_proxy, descriptor.digest)
    assert len(sent) == requests
    assert all(r.status == 206 for r in sent)
    assert sum(r.body_bytes for r in sent) < descriptor.size * 0.01


@pytest.mark.parametrize("tag", ["estargz", "zstd-chunked"])
async def test_registry_cat_fetches_only_that_files_chunks(client, fault_proxy, pushed, tag):
    repo_tag, layer = pushed[tag]
    fetch, descriptor = await _open(client, fault_proxy, repo_tag)
    toc = await read_toc(fetch, descriptor.size, descriptor.annotations)
    assert toc is not None
    fault_proxy.reset()
    assert await read_all(fetch, toc, "etc/hosts") == layer.layer.files["etc/hosts"]
    assert await read_all(fetch, toc, "usr/bin/big") == BIG
    sent = _blob_requests(fault_proxy, descriptor.digest)
    assert len(sent) == 2
    spans = [toc.files[p].chunks for p in ("etc/hosts", "usr/bin/big")]
    assert [r.range for r in sent] == [f"bytes={c[0].offset}-{c[-1].end - 1}" for c in spans]
    assert sum(r.body_bytes for r in sent) < len(BIG) + (64 << 10)


async def test_registry_toc_failing_its_digest_is_a_corrupt_layer(client, fault_proxy, pushed):
    fetch, descriptor = await _open(client, fault_proxy, pushed["estargz-wrong-digest"][0])
    with pytest.raises(CorruptLayer, match="annotation digest"):
        await read_toc(fetch, descriptor.size, descriptor.annotations)


async def test_registry_plain_gzip_layer_has_no_toc(client, fault_proxy, pushed):
    fetch, descriptor = await _open(client, fault_proxy, pushed["plain-gzip"][0])
    assert await read_toc(fetch, descriptor.size, descriptor.annotations) is None
    sent = _blob_requests(fault_proxy, descriptor.digest)
    assert [(r.range, r.body_bytes) for r in sent] == [("bytes=-72", 72)]


# -- through the façade: what `layerpeek ls` and `cat` pay on TOC layers --------------------


@pytest.mark.parametrize(("tag", "requests"), [("estargz", 2), ("zstd-chunked", 1)])
async def test_listing_a_toc_layer_reads_only_the_toc(client, fault_proxy, pushed, tag, requests):
    repo_tag, layer = pushed[tag]
    peek = Layerpeek(client)
    image = await peek.resolve(f"{fault_proxy.host}/{repo_tag}")
    page = await peek.list_page(image, 0, limit=1000)
    assert page.complete
    assert [(e.path, e.type, e.size, e.link) for e in page.entries] == expected_listing(layer)
    sent = _blob_requests(fault_proxy, image.manifest.layers[0].digest)
    assert len(sent) == requests
    assert sum(r.body_bytes for r in sent) < image.manifest.layers[0].size * 0.01


@pytest.mark.parametrize("tag", ["estargz", "zstd-chunked"])
async def test_cat_on_a_toc_layer_fetches_the_toc_and_that_files_chunks(
    client, fault_proxy, pushed, tag
):
    repo_tag, _ = pushed[tag]
    peek = Layerpeek(client)
    image = await peek.resolve(f"{fault_proxy.host}/{repo_tag}")
    data = b"".join([chunk async for chunk in peek.read_file(image, "usr/bin/big")])
    assert data == BIG
    descriptor = image.manifest.layers[0]
    sent = _blob_requests(fault_proxy, descriptor.digest)
    assert sum(r.body_bytes for r in sent) < len(BIG) + descriptor.size * 0.02


async def test_a_toc_failing_its_digest_falls_back_to_scanning(client, fault_proxy, pushed):
    repo_tag, layer = pushed["estargz-wrong-digest"]
    peek = Layerpeek(client)
    image = await peek.resolve(f"{fault_proxy.host}/{repo_tag}")
    entries = [e async for e in peek.entries(image, 0)]
    assert [(e.path, e.type, e.size, e.link) for e in entries] == expected_listing(layer)
    assert bytes_read(fault_proxy, image) >= image.manifest.layers[0].size


@pytest.mark.parametrize("tag", ["estargz-cut-toc", "zstd-chunked-cut-toc"])
async def test_a_toc_cut_short_falls_back_to_scanning(client, fault_proxy, pushed, tag):
    repo_tag, layer = pushed[tag]
    peek = Layerpeek(client)
    image = await peek.resolve(f"{fault_proxy.host}/{repo_tag}")
    assert image.manifest.layers[0].annotations == layer.annotations
    entries = [e async for e in peek.entries(image, 0)]
    assert [(e.path, e.type, e.size, e.link) for e in entries] == expected_listing(layer)
    assert bytes_read(fault_proxy, image) >= image.manifest.layers[0].size


def bytes_read(fault_proxy, image) -> int:
    return sum(r.body_bytes for r in _blob_requests(fault_proxy, image.manifest.layers[0].digest))
