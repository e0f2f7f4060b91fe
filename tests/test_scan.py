"""scan_layer: compressed chunks in, entries out, off the event loop, stoppable, bounded."""

from __future__ import annotations

import gzip
import io
import itertools
import random
import re
import tarfile
import threading
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
import zstandard

from layerpeek.core.errors import CorruptLayer, LayerError, TruncatedLayer
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.layers.scan import FileData, LayerReader, ScanEvent, scan_layer
from layerpeek.core.layers.tar.scanner import TarScanner

COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "zstd": zstandard.ZstdCompressor(write_checksum=True).compress,
    "none": bytes,
}


def layer_tar(files: int = 300, seed: int = 1) -> bytes:
    """A PAX tar of small, partly compressible files in a few directories."""
    rng = random.Random(seed)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(files):
            data = rng.randbytes(rng.randrange(0, 3000)) + b"text " * rng.randrange(0, 600)
            info = tarfile.TarInfo(f"usr/share/doc/pkg{i % 17}/file{i}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


TAR = layer_tar()


def reference_entries(tar: bytes) -> list[TarEntry]:
    scanner = TarScanner()
    found = scanner.feed(tar)
    scanner.close()
    return found  # type: ignore[return-value]


class Source:
    """An async chunk iterator that counts how many chunks were pulled from it."""

    def __init__(self, blob: bytes, sizes: Callable[[], int]) -> None:
        self.chunks: list[bytes] = []
        pos = 0
        while pos < len(blob):
            step = sizes()
            self.chunks.append(blob[pos : pos + step])
            pos += step
        self.pulled = 0

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> bytes:
        if self.pulled == len(self.chunks):
            raise StopAsyncIteration
        self.pulled += 1
        return self.chunks[self.pulled - 1]


def source(blob: bytes, size: int = 16384, seed: int | None = None) -> Source:
    rng = random.Random(seed)
    return Source(blob, (lambda: rng.randint(1, 2 * size)) if seed is not None else lambda: size)


async def collect(chunks: Source, **options: object) -> list[ScanEvent]:
    return [event async for event in scan_layer(chunks, **options)]  # type: ignore[arg-type]


async def collect_until_error(chunks: Source) -> tuple[list[ScanEvent], LayerError]:
    events: list[ScanEvent] = []
    with pytest.raises(LayerError) as caught:
        async for event in scan_layer(chunks):
            events.append(event)
    return events, caught.value


@pytest.mark.parametrize("kind", COMPRESS)
async def test_every_compression_lists_the_tar_entries(kind: str) -> None:
    blob = COMPRESS[kind](TAR)
    assert await collect(source(blob, seed=5)) == reference_entries(TAR)


async def test_chunk_sizes_do_not_change_the_result() -> None:
    blob = gzip.compress(TAR)
    whole = await collect(source(blob, size=len(blob)))
    assert await collect(source(blob, size=1)) == whole
    assert await collect(source(blob, size=700, seed=9)) == whole


def test_the_reader_detects_compression_from_bytes_fed_one_at_a_time() -> None:
    tar = layer_tar(files=30)
    blob = zstandard.ZstdCompressor().compress(tar)
    reader = LayerReader()
    events: list[ScanEvent] = []
    for i in range(len(blob)):
        reader.feed(blob[i : i + 1])
        while not reader.needs_input:
            events += reader.step()
    reader.close()
    assert events == reference_entries(tar)
    assert reader.consumed == len(blob)


async def test_multi_member_gzip_like_estargz() -> None:
    cuts = [0, *(e.offset - 512 for e in reference_entries(TAR)[::10][1:]), len(TAR)]
    members = [gzip.compress(TAR[a:b]) for a, b in itertools.pairwise(cuts)]
    blob = b"".join(members) + bytes(100)
    assert await collect(source(blob, seed=2)) == reference_entries(TAR)


async def test_multi_frame_zstd_with_skippable_frames_like_zstd_chunked() -> None:
    compress = zstandard.ZstdCompressor().compress
    skippable = b"\x50\x2a\x4d\x18" + (9).to_bytes(4, "little") + b"manifest!"
    blob = b"".join(compress(TAR[i : i + 5000]) for i in range(0, len(TAR), 5000)) + skippable
    assert await collect(source(blob, seed=3)) == reference_entries(TAR)


async def test_wanted_file_streams_through_scan_layer() -> None:
    target = reference_entries(TAR)[123]
    events = await collect(source(COMPRESS["zstd"](TAR)), want=lambda e: e.path == target.path)
    data = [e for e in events if isinstance(e, FileData)]
    assert b"".join(e.data for e in data) == TAR[target.offset : target.offset + target.size]
    assert data[-1].last


async def test_truncated_gzip_says_how_far_it_got() -> None:
    blob = gzip.compress(TAR)[: len(TAR) // 8]
    events, error = await collect_until_error(source(blob))
    assert isinstance(error, TruncatedLayer)
    assert re.fullmatch(
        r"gzip stream ends early after [\d,]+ bytes \([\d,]+ entries read\)", str(error)
    )
    assert (error.offset, error.entries) == (len(blob), len(events))
    assert events == reference_entries(TAR)[: len(events)]
    assert events


async def test_corrupt_gzip_yields_what_came_before_the_damage() -> None:
    blob = bytearray(gzip.compress(TAR))
    blob[len(blob) // 2 :] = bytes(len(blob) - len(blob) // 2)
    events, error = await collect_until_error(source(bytes(blob)))
    # zlib may decode some garbage before it notices; then the tar checksum catches it.
    assert isinstance(error, CorruptLayer)
    assert len(blob) // 2 <= error.offset < len(blob)
    assert error.entries == len(events) > 0
    assert events == reference_entries(TAR)[: len(events)]


async def test_corrupt_zstd_is_corrupt() -> None:
    blob = bytearray(COMPRESS["zstd"](TAR))
    blob[-6] ^= 0xFF
    _, error = await collect_until_error(source(bytes(blob)))
    assert isinstance(error, CorruptLayer)
    assert "corrupt zstd data" in str(error)


async def test_a_pax_header_of_two_mebibytes_inside_gzip_is_read_record_by_record() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "c" * (2 << 20)}
        tar.addfile(info)
    found = await collect(source(gzip.compress(buffer.getvalue())))
    assert [(e.path, e.size) for e in found] == [("f", 0)]


async def test_tar_entry_cut_short_names_the_entry_and_counts() -> None:
    last = reference_entries(TAR)[-1]
    blob = TAR[: last.offset + last.size // 2]
    events, error = await collect_until_error(source(blob))
    assert isinstance(error, TruncatedLayer)
    assert str(error).startswith(f"tar stream ends inside the data of {last.path!r} after ")
    assert (error.offset, error.entries) == (len(blob), len(events))


async def test_an_empty_blob_is_an_empty_layer() -> None:
    assert await collect(source(b"")) == []


@pytest.mark.parametrize(("blob", "what"), [(b"\x1f\x8b", "gzip"), (b"ab", "tar")])
async def test_a_blob_too_short_to_detect_is_truncated(blob: bytes, what: str) -> None:
    _, error = await collect_until_error(source(blob))
    assert isinstance(error, TruncatedLayer)
    assert str(error).startswith(what)
    assert error.offset == len(blob)


async def test_early_stop_pulls_no_further_chunks() -> None:
    chunks = source(COMPRESS["none"](TAR), size=4096)
    events = scan_layer(chunks)
    first = await anext(events)
    pulled = chunks.pulled
    await events.aclose()
    assert first == reference_entries(TAR)[0]
    assert chunks.pulled == pulled < len(chunks.chunks)


async def test_progress_reports_compressed_bytes_and_entries() -> None:
    blob = gzip.compress(TAR)
    calls: list[tuple[int, int]] = []
    await collect(source(blob, size=50_000), on_progress=lambda *a: calls.append(a))
    assert len(calls) >= 2
    assert calls == sorted(calls)
    assert calls[-1] == (len(blob), len(reference_entries(TAR)))


async def test_scanning_runs_in_worker_threads() -> None:
    threads: set[int] = set()

    def want(entry: TarEntry) -> bool:
        threads.add(threading.get_ident())
        return False

    await collect(source(gzip.compress(TAR)), want=want)
    assert threads
    assert threading.get_ident() not in threads


def zero_bomb(size: int, compressor: zlib._Compress | zstandard.ZstdCompressionObj) -> bytes:
    """A tar holding one ``size``-byte file of zeros, compressed without holding it whole."""
    header = tarfile.TarInfo("bomb")
    header.size = size
    parts = [compressor.compress(header.tobuf(tarfile.GNU_FORMAT))]
    parts += [compressor.compress(bytes(1 << 20)) for _ in range(size >> 20)]
    parts += [compressor.compress(bytes(1024)), compressor.flush()]
    return b"".join(parts)


async def iterate_discarding(chunks: Source, want: Callable[[TarEntry], bool]) -> int:
    streamed = 0
    async for event in scan_layer(chunks, want=want):
        if isinstance(event, FileData):
            streamed += len(event.data)
    return streamed


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
async def test_a_decompression_bomb_is_scanned_in_bounded_memory(kind: str) -> None:
    size = 200 << 20
    if kind == "gzip":
        blob = zero_bomb(size, zlib.compressobj(1, wbits=31))
    else:
        blob = zero_bomb(size, zstandard.ZstdCompressor(level=1).compressobj())
    tracemalloc.start()
    try:
        listed = await iterate_discarding(source(blob, size=65536), want=lambda e: False)
        _, listing_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        streamed = await iterate_discarding(source(blob, size=65536), want=lambda e: True)
        _, streaming_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (listed, streamed) == (0, size)
    assert listing_peak < 4 << 20
    assert streaming_peak < 12 << 20
