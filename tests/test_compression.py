"""Incremental decompressors: framing, chunk-size independence, bombs, damage."""

from __future__ import annotations

import gzip
import io
import os
import random
import tarfile
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import zstandard

from layerpeek.core.errors import CorruptLayer, TruncatedLayer
from layerpeek.core.layers.compression import (
    MAX_OUTPUT,
    Decompressor,
    GzipDecompressor,
    Passthrough,
    ZstdDecompressor,
    detect_compression,
    make_decompressor,
)
from layerpeek.core.layers.scan import LayerReader

PAYLOAD = os.urandom(70_000) + b"layerpeek " * 30_000 + bytes(200_000)


def chunkings(blob: bytes, seed: int = 7) -> Iterator[list[bytes]]:
    """The same blob as one piece, byte by byte, and in random chunk sizes."""
    yield [blob]
    yield [blob[i : i + 1] for i in range(len(blob))]
    rng = random.Random(seed)
    pieces, pos = [], 0
    while pos < len(blob):
        step = rng.randint(1, 9000)
        pieces.append(blob[pos : pos + step])
        pos += step
    yield pieces


def run(decompressor: Decompressor, pieces: list[bytes]) -> tuple[bytes, int]:
    """Decompress all pieces; return the output and the largest piece produced."""
    out, largest = bytearray(), 0
    for chunk in pieces:
        for piece in decompressor.feed(chunk):
            largest = max(largest, len(piece))
            out += piece
    decompressor.finish()
    return bytes(out), largest


def zstd_frame(data: bytes, **options: object) -> bytes:
    return zstandard.ZstdCompressor(**options).compress(data)


def skippable_frame(payload: bytes, nibble: int = 0) -> bytes:
    magic = (0x184D2A50 + nibble).to_bytes(4, "little")
    return magic + len(payload).to_bytes(4, "little") + payload


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd"),
        (b"\x50\x2a\x4d\x18\x00", "zstd"),  # a skippable frame first: still zstd
        (b"\x5f\x2a\x4d\x18", "zstd"),
        (b"\x60\x2a\x4d\x18", "none"),
        (b"etc/passwd\x00\x00", "none"),
        (b"\x1f", "none"),
        (b"", "none"),
    ],
)
def test_detect_compression_reads_magic_bytes(head: bytes, kind: str) -> None:
    assert detect_compression(head) == kind


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("gzip", GzipDecompressor), ("zstd", ZstdDecompressor), ("none", Passthrough)],
)
def test_make_decompressor_gives_one_per_format(kind: str, cls: type) -> None:
    assert isinstance(make_decompressor(kind), cls)  # type: ignore[arg-type]


def test_passthrough_cuts_large_chunks_and_counts_bytes() -> None:
    decompressor = Passthrough()
    out, largest = run(decompressor, [PAYLOAD * 3])
    assert out == PAYLOAD * 3
    assert largest == MAX_OUTPUT
    assert decompressor.consumed == len(PAYLOAD) * 3


def test_gzip_output_does_not_depend_on_chunking() -> None:
    blob = gzip.compress(PAYLOAD)
    for pieces in chunkings(blob):
        decompressor = GzipDecompressor()
        assert run(decompressor, pieces)[0] == PAYLOAD
        assert decompressor.consumed == len(blob)


def test_gzip_reads_every_member_and_skips_zero_padding() -> None:
    parts = [PAYLOAD[:1000], b"", PAYLOAD[1000:50_000], PAYLOAD[50_000:]]
    blob = b"".join(gzip.compress(part) for part in parts) + bytes(4096)
    for pieces in chunkings(blob):
        decompressor = GzipDecompressor()
        assert run(decompressor, pieces)[0] == PAYLOAD
        assert decompressor.consumed == len(blob)


def _bomb(compressor: Any) -> bytes:
    """64 MiB of zeros: a few dozen KiB compressed."""
    return b"".join(compressor.compress(bytes(1 << 20)) for _ in range(64)) + compressor.flush()


@pytest.mark.parametrize(
    ("compressor", "decompressor", "bound"),
    [
        (lambda: zlib.compressobj(9, wbits=31), GzipDecompressor, MAX_OUTPUT),
        (lambda: zstandard.ZstdCompressor(level=3).compressobj(), ZstdDecompressor, 128 << 10),
    ],
    ids=["gzip", "zstd"],
)
def test_a_bomb_comes_out_in_bounded_pieces(compressor, decompressor, bound) -> None:
    blob = _bomb(compressor())
    reader = decompressor()
    total, largest = 0, 0
    for piece in reader.feed(blob):
        total += len(piece)
        largest = max(largest, len(piece))
    reader.finish()
    assert total == 64 << 20
    assert largest <= bound


def test_truncated_gzip_raises_with_bytes_consumed() -> None:
    blob = gzip.compress(PAYLOAD)[:-9]
    decompressor = GzipDecompressor()
    with pytest.raises(TruncatedLayer, match="gzip stream ends early") as caught:
        run(decompressor, [blob])
    assert caught.value.offset == len(blob)


def test_corrupt_gzip_raises_with_offset_where_zlib_failed() -> None:
    first = gzip.compress(PAYLOAD)
    damaged = bytearray(gzip.compress(PAYLOAD))
    damaged[10] = 0xFF  # The first deflate block header: reserved block type 3.
    with pytest.raises(CorruptLayer, match="invalid block type") as caught:
        run(GzipDecompressor(), [first + bytes(damaged)])
    assert caught.value.offset == len(first)


def test_gzip_checksum_mismatch_is_corrupt() -> None:
    blob = bytearray(gzip.compress(PAYLOAD))
    blob[-8] ^= 0xFF
    with pytest.raises(CorruptLayer, match="incorrect data check"):
        run(GzipDecompressor(), [bytes(blob)])


def test_garbage_after_gzip_member_is_corrupt() -> None:
    with pytest.raises(CorruptLayer):
        run(GzipDecompressor(), [gzip.compress(b"data") + b"garbage"])


def test_zstd_output_does_not_depend_on_chunking() -> None:
    blob = zstd_frame(PAYLOAD, write_checksum=True)
    for pieces in chunkings(blob):
        decompressor = ZstdDecompressor()
        assert run(decompressor, pieces)[0] == PAYLOAD
        assert decompressor.consumed == len(blob)


def test_zstd_reads_every_frame_and_passes_skippable_frames() -> None:
    blob = b"".join(
        [
            skippable_frame(b"zstd:chunked manifest"),
            zstd_frame(PAYLOAD[:1000], write_checksum=True),
            zstd_frame(PAYLOAD[1000:90_000], write_content_size=False),
            skippable_frame(b"", nibble=15),
            zstd_frame(b""),
            zstd_frame(PAYLOAD[90_000:], level=19, write_dict_id=False),
            skippable_frame(b"footer" * 12, nibble=3),
        ]
    )
    for pieces in chunkings(blob):
        decompressor = ZstdDecompressor()
        assert run(decompressor, pieces)[0] == PAYLOAD
        assert decompressor.consumed == len(blob)


@pytest.mark.parametrize("cut", [3, 6, 20, -5, -1])
def test_truncated_zstd_raises_with_bytes_consumed(cut: int) -> None:
    blob = zstd_frame(PAYLOAD, write_checksum=True)[:cut]
    decompressor = ZstdDecompressor()
    with pytest.raises(TruncatedLayer, match="zstd stream ends early") as caught:
        run(decompressor, [blob])
    assert caught.value.offset == len(blob)


def test_truncated_skippable_frame_is_truncated() -> None:
    with pytest.raises(TruncatedLayer):
        run(ZstdDecompressor(), [skippable_frame(b"manifest")[:-2]])


def test_corrupt_zstd_raises() -> None:
    blob = bytearray(zstd_frame(os.urandom(1000) + b"abc" * 50_000, write_checksum=True))
    blob[-20:-10] = b"\x00" * 10
    with pytest.raises(CorruptLayer, match="corrupt zstd data"):
        run(ZstdDecompressor(), [bytes(blob)])


def test_garbage_after_zstd_frame_is_corrupt() -> None:
    blob = zstd_frame(b"data")
    with pytest.raises(CorruptLayer, match="no frame magic") as caught:
        run(ZstdDecompressor(), [blob + b"not a frame"])
    assert caught.value.offset == len(blob)


def test_a_zstd_layer_that_starts_with_skippable_frames_is_listed() -> None:
    info = tarfile.TarInfo("etc/hostname")
    info.size = 5
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b"host\n"))
    tar_bytes = buffer.getvalue()
    blob = b"".join(
        [
            skippable_frame(b"metadata first", nibble=0xA),
            zstd_frame(tar_bytes[:512]),
            skippable_frame(b"between frames", nibble=2),
            zstd_frame(tar_bytes[512:]),
        ]
    )
    for pieces in chunkings(blob):
        reader = LayerReader()
        found = []
        for piece in pieces:
            reader.feed(piece)
            while not reader.needs_input:
                found += reader.step()
        reader.close()
        assert [(e.path, e.size) for e in found] == [("etc/hostname", 5)]
