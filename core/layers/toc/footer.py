"""Finding and reading a layer's TOC: the footer (or the zstd:chunked position annotation)
that says where it is, then one range request for the TOC, verified and parsed.

``read_toc`` returns None for a layer without a TOC and raises ``CorruptLayer`` for one whose
TOC is present but unreadable or fails its digest: either way the caller lists the layer by
scanning it, which works because both formats are valid plain layers.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import anyio.to_thread

from layerpeek.core.errors import CorruptLayer, LayerError
from layerpeek.core.layers.compression import Compression, make_decompressor
from layerpeek.core.layers.tar.scanner import FileData, TarScanner
from layerpeek.core.layers.toc.checks import Hash, fetch_span
from layerpeek.core.layers.toc.jsonstream import parse_toc
from layerpeek.core.layers.toc.model import (
    ESTARGZ_TOC_DIGEST,
    ESTARGZ_TOC_NAME,
    MAX_TOC_BYTES,
    ZSTD_CHUNKED_OLD_PREFIX,
    ZSTD_CHUNKED_PREFIX,
    Fetch,
    Toc,
)

_ESTARGZ_FOOTER = 51
_STARGZ_FOOTER = 47
_ZSTD_FOOTER = 72
_ZSTD_OLD_FOOTER = 40
_FOOTER_PROBE = _ZSTD_FOOTER
"""One suffix request long enough for every footer: detection costs a single small range."""
_ZSTD_MAGIC = b"GNUlInUx"
_ZSTD_OLD_MAGIC = b"GnUlInUx"
_ZSTD_SKIPPABLE_HEADER = 8
_ZSTD_SKIPPABLE_MAGIC = 0x184D2A50
_MANIFEST_TYPE_CRFS = 1  # the only manifest type zstd:chunked defines
_HEX16 = re.compile(rb"[0-9a-fA-F]{16}")


@dataclass(frozen=True, slots=True)
class _EStargzFooter:
    toc_offset: int
    size: int


@dataclass(frozen=True, slots=True)
class _ZstdManifest:
    offset: int
    compressed: int
    uncompressed: int
    kind: int


def announces_toc(annotations: Mapping[str, str]) -> bool:
    """Whether a layer descriptor says its blob carries a TOC (what eStargz and zstd:chunked
    writers put on the layer); only such layers are worth the extra footer request."""
    return bool(
        annotations.get(ESTARGZ_TOC_DIGEST)
        or _zstd_annotation(annotations, "manifest-position")
        or _zstd_annotation(annotations, "manifest-checksum")
    )


async def read_toc(fetch: Fetch, blob_size: int, annotations: Mapping[str, str]) -> Toc | None:
    """The layer's TOC, or None when it has none (a plain layer: list it by scanning).

    zstd:chunked with its position annotation costs one range request (the manifest);
    otherwise one suffix request finds the footer, and one more fetches the TOC. Raises
    ``CorruptLayer`` when a TOC is present (or promised by an annotation) but cannot be read
    or fails its digest: fall back to scanning, which does not depend on the TOC.
    """
    position = _zstd_annotation(annotations, "manifest-position")
    if position:
        return await _read_zstd(fetch, blob_size, _parse_position(position), annotations)
    found = await _find_footer(fetch, blob_size)
    if isinstance(found, _EStargzFooter):
        return await _read_estargz(fetch, blob_size, found, annotations)
    if isinstance(found, _ZstdManifest):
        return await _read_zstd(fetch, blob_size, found, annotations)
    if annotations.get(ESTARGZ_TOC_DIGEST) or _zstd_annotation(annotations, "manifest-checksum"):
        raise CorruptLayer("the layer's annotations promise a TOC but its blob has no TOC footer")
    return None


def _zstd_annotation(annotations: Mapping[str, str], key: str) -> str:
    return annotations.get(ZSTD_CHUNKED_PREFIX + key) or annotations.get(
        ZSTD_CHUNKED_OLD_PREFIX + key, ""
    )


def _parse_position(value: str) -> _ZstdManifest:
    """``offset:compressed-length:uncompressed-length:type`` from the annotation."""
    parts = value.split(":")
    if len(parts) != 4 or not all(part.isascii() and part.isdecimal() for part in parts):
        raise CorruptLayer(f"malformed zstd:chunked manifest position {value[:80]!r}")
    return _ZstdManifest(*(int(part) for part in parts))


async def _find_footer(fetch: Fetch, blob_size: int) -> _EStargzFooter | _ZstdManifest | None:
    probe = min(_FOOTER_PROBE, blob_size)
    if probe < _ZSTD_OLD_FOOTER:
        return None
    tail = await fetch(-probe, blob_size - 1)
    if len(tail) != probe:
        raise CorruptLayer(f"asked for the last {probe} bytes of the blob, got {len(tail)}")
    return _zstd_footer(tail) or _estargz_footer(tail)


def _zstd_footer(tail: bytes) -> _ZstdManifest | None:
    """The 72-byte footer (inside a skippable frame), or the older one's last 40 bytes."""
    if len(tail) >= _ZSTD_FOOTER and tail.endswith(_ZSTD_MAGIC):
        magic, size = struct.unpack("<II", tail[-_ZSTD_FOOTER : -_ZSTD_FOOTER + 8])
        if magic & 0xFFFFFFF0 != _ZSTD_SKIPPABLE_MAGIC or size != _ZSTD_FOOTER - 8:
            raise CorruptLayer("zstd:chunked footer outside its skippable frame")
        return _ZstdManifest(*struct.unpack("<4Q", tail[-64:-32]))
    if tail.endswith(_ZSTD_OLD_MAGIC):
        return _ZstdManifest(*struct.unpack("<4Q", tail[-_ZSTD_OLD_FOOTER:-8]))
    return None


def _estargz_footer(tail: bytes) -> _EStargzFooter | None:
    for size in (_ESTARGZ_FOOTER, _STARGZ_FOOTER):
        if len(tail) >= size:
            offset = _footer_toc_offset(tail[-size:])
            if offset is not None:
                return _EStargzFooter(offset, size)
    return None


def _footer_toc_offset(footer: bytes) -> int | None:
    """The TOC offset from an empty gzip member whose extra field says ``%016xSTARGZ``.

    eStargz wraps the text in an RFC 1952 subfield (``SG`` + little-endian length 22);
    legacy stargz put the bare text in the extra field.
    """
    if footer[:3] != b"\x1f\x8b\x08" or not footer[3] & 0x04:
        return None
    extra = footer[12 : 12 + int.from_bytes(footer[10:12], "little")]
    if len(footer) == _ESTARGZ_FOOTER:
        if extra[:2] != b"SG" or int.from_bytes(extra[2:4], "little") != 22:
            return None
        extra = extra[4:]
    if len(extra) != 22 or extra[16:] != b"STARGZ" or not _HEX16.fullmatch(extra[:16]):
        return None
    member = zlib.decompressobj(31)
    try:
        empty = member.decompress(footer) == b"" and member.eof and not member.unused_data
    except zlib.error:
        empty = False
    return int(extra[:16], 16) if empty else None


async def _read_estargz(
    fetch: Fetch, blob_size: int, footer: _EStargzFooter, annotations: Mapping[str, str]
) -> Toc:
    end = blob_size - footer.size
    if not 0 <= footer.toc_offset < end:
        raise CorruptLayer(f"eStargz footer points at a TOC at {footer.toc_offset:,}")
    if end - footer.toc_offset > MAX_TOC_BYTES:
        raise CorruptLayer(_too_large("eStargz TOC", end - footer.toc_offset))
    member = await fetch_span(fetch, footer.toc_offset, end)
    expected = annotations.get(ESTARGZ_TOC_DIGEST, "")
    return await anyio.to_thread.run_sync(_estargz_toc, member, expected, footer.toc_offset)


def _estargz_toc(member: bytes, expected: str, data_end: int) -> Toc:
    """Inflate, hash and parse the TOC member as one stream (in a worker thread)."""
    mismatch = f"eStargz TOC does not match its annotation digest {expected}"
    check = Hash(expected, mismatch, CorruptLayer)
    toc = parse_toc("estargz", check.hashed(_estargz_json(member)), data_end)
    check.verify()
    return toc


def _estargz_json(member: bytes) -> Iterator[bytes]:
    """``stargz.index.json`` out of the TOC member (a gzip member holding a small tar), piece
    by piece as it inflates."""
    scanner = TarScanner(want=lambda entry: entry.path == ESTARGZ_TOC_NAME)
    complete = False
    for piece in _inflated("gzip", member, MAX_TOC_BYTES + (64 << 10), "eStargz TOC"):
        try:
            events = scanner.feed(piece)
        except LayerError as error:
            raise CorruptLayer(f"eStargz TOC member is not a tar entry ({error})") from error
        for event in events:
            if isinstance(event, FileData) and event.entry.path == ESTARGZ_TOC_NAME:
                if complete:
                    raise CorruptLayer(f"eStargz TOC member holds two {ESTARGZ_TOC_NAME}")
                complete = event.last
                yield event.data
    if not complete:
        raise CorruptLayer(f"eStargz TOC member holds no complete {ESTARGZ_TOC_NAME}")


async def _read_zstd(
    fetch: Fetch, blob_size: int, manifest: _ZstdManifest, annotations: Mapping[str, str]
) -> Toc:
    if manifest.kind != _MANIFEST_TYPE_CRFS:
        raise CorruptLayer(f"unknown zstd:chunked manifest type {manifest.kind}")
    stop = manifest.offset + manifest.compressed
    if max(manifest.compressed, manifest.uncompressed) > MAX_TOC_BYTES:
        size = max(manifest.compressed, manifest.uncompressed)
        raise CorruptLayer(_too_large("zstd:chunked manifest", size))
    if manifest.offset < _ZSTD_SKIPPABLE_HEADER or stop > blob_size:
        raise CorruptLayer(
            f"zstd:chunked manifest at {manifest.offset:,} ({manifest.compressed:,} bytes, "
            f"{manifest.uncompressed:,} inflated) does not fit a {blob_size:,}-byte blob"
        )
    compressed = await fetch_span(fetch, manifest.offset, stop)
    checksum = _zstd_annotation(annotations, "manifest-checksum")
    data_end = manifest.offset - _ZSTD_SKIPPABLE_HEADER
    return await anyio.to_thread.run_sync(
        _zstd_toc, compressed, checksum, manifest.uncompressed, data_end
    )


def _zstd_toc(compressed: bytes, checksum: str, size: int, data_end: int) -> Toc:
    """Check the compressed manifest, then inflate and parse it as one stream (in a worker
    thread)."""
    mismatch = f"zstd:chunked manifest does not match its annotation digest {checksum}"
    check = Hash(checksum, mismatch, CorruptLayer)
    check.update(compressed)
    check.verify()
    return parse_toc("zstd:chunked", _zstd_json(compressed, size), data_end)


def _zstd_json(compressed: bytes, size: int) -> Iterator[bytes]:
    """The manifest's JSON piece by piece, refusing any length but the position's."""
    total = 0
    for piece in _inflated("zstd", compressed, size, "zstd:chunked manifest"):
        total += len(piece)
        yield piece
    if total != size:
        raise CorruptLayer(f"zstd:chunked manifest is {total:,} bytes, its position says {size:,}")


def _inflated(kind: Compression, data: bytes, cap: int, what: str) -> Iterator[bytes]:
    """Decompress a member or frame in bounded pieces (never the whole output at once),
    refusing more than ``cap`` bytes out."""
    decompressor = make_decompressor(kind)
    pieces = decompressor.feed(data)
    total = 0
    while True:
        try:
            piece = next(pieces, None)
            if piece is None:
                decompressor.finish()
        except LayerError as error:
            raise CorruptLayer(f"{what} does not decompress ({error})") from error
        if piece is None:
            return
        total += len(piece)
        if total > cap:
            raise CorruptLayer(f"{what} inflates past {cap:,} bytes, over the TOC size limit")
        yield piece


def _too_large(what: str, size: int) -> str:
    return f"{what} of {size:,} bytes exceeds the {MAX_TOC_BYTES >> 20} MiB TOC limit"
