"""Layers that carry their own table of contents: eStargz and zstd:chunked, read by range.

Both formats are ordinary tar.gz / tar.zst layers (any client can pull and apply them) that
also carry a TOC: a JSON list of every entry with the compressed offsets of each regular
file's data. Reading the TOC lists a layer for the cost of its footer and TOC (~1 % of the
blob) instead of the whole blob, and reading one file costs only that file's chunks.

Everything here needs just a range fetcher (``Fetch``), so it runs the same against the
registry client, a cache or bytes in memory. The formats (RESEARCH section 2):

- eStargz: gzip members; a regular file's data starts a new member (its tar header sits in
  the member before, or, with ``innerOffset``, earlier in the same member); the TOC is a
  member holding a tar entry ``stargz.index.json``; the last 51 bytes are an empty gzip
  member whose FEXTRA subfield ``SG`` holds the TOC offset as ``%016x`` + ``STARGZ`` (legacy
  stargz: 47 bytes, the extra field without its subfield header).
- zstd:chunked: zstd frames, a file's data in frames of its own (``offset``..``endOffset``);
  then skippable frames holding the zstd-compressed TOC ("manifest"), the tar-split data and
  a footer of little-endian u64s ending in ``GNUlInUx`` (72 bytes with its frame header; the
  older footer's last 40 bytes end in ``GnUlInUx``). Layer annotations give the manifest's
  position and checksum, so a listing can cost one range request.

``read_toc`` returns None for a layer without a TOC and raises ``CorruptLayer`` for one whose
TOC is present but unreadable or fails its digest: either way the caller lists the layer by
scanning it, which works because both formats are valid plain layers.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import anyio.to_thread
import orjson

from ..errors import CorruptLayer, DigestMismatch, FileNotInLayer, LayerError
from .compression import Compression, make_decompressor
from .entry import EntryType, TarEntry, display_path
from .tar import FileData, TarScanner, _whiteout_type

__all__ = [
    "ESTARGZ_TOC_DIGEST",
    "ESTARGZ_TOC_NAME",
    "TOC_ARTIFACTS",
    "ZSTD_CHUNKED_CHECKSUM",
    "ZSTD_CHUNKED_POSITION",
    "Fetch",
    "Toc",
    "TocChunk",
    "TocFile",
    "TocFormat",
    "parse_toc",
    "read_toc",
    "read_toc_file",
]

Fetch = Callable[[int, int], Awaitable[bytes]]
"""``fetch(start, end)``: bytes ``start``..``end`` inclusive of the blob; a negative ``start``
asks for the last ``-start`` bytes (``end`` is then ignored), like ``RegistryClient.fetch_range``.
"""

TocFormat = Literal["estargz", "zstd:chunked"]

ESTARGZ_TOC_DIGEST = "containerd.io/snapshot/stargz/toc.digest"
ESTARGZ_TOC_NAME = "stargz.index.json"
_ZSTD_CHUNKED_PREFIX = "io.github.containers.zstd-chunked."
# Older writers used this prefix for the same annotations (RESEARCH section 2).
_ZSTD_CHUNKED_OLD_PREFIX = "io.containers.zstd-chunked."
ZSTD_CHUNKED_POSITION = _ZSTD_CHUNKED_PREFIX + "manifest-position"
ZSTD_CHUNKED_CHECKSUM = _ZSTD_CHUNKED_PREFIX + "manifest-checksum"
TOC_ARTIFACTS = frozenset({ESTARGZ_TOC_NAME, ".prefetch.landmark", ".no.prefetch.landmark"})
"""Entries the eStargz format adds to the tar for its own use; listings hide them."""

MAX_TOC_BYTES = 50 << 20
"""Largest TOC accepted, compressed or not (containers/storage's own manifest limit)."""
WINDOW = 8 << 20
"""Largest single range request ``read_toc_file`` makes; adjacent chunks share requests."""
_STEP = 4 << 20  # decompressed bytes one worker-thread hop produces at most

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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TYPES: dict[str, EntryType] = {
    "reg": "file",
    "dir": "dir",
    "symlink": "symlink",
    "hardlink": "hardlink",
    "char": "char",
    "block": "block",
    "fifo": "fifo",
}
_COMPRESSION: dict[TocFormat, Compression] = {"estargz": "gzip", "zstd:chunked": "zstd"}


@dataclass(frozen=True, slots=True)
class TocChunk:
    """Where one piece of a regular file lives in the blob.

    ``offset``..``end`` (end exclusive) is the compressed span to fetch: it starts a gzip
    member or zstd frame; ``end`` is the TOC's ``endOffset`` where the format records it,
    else the next data offset in the blob (what stargz-snapshotter does). Decompressed, the
    span holds ``inner_offset`` bytes to skip (tar headers sharing the member), then the
    ``size`` bytes at ``chunk_offset`` of the file, whose sha256 is ``digest`` when known.
    """

    offset: int
    end: int
    chunk_offset: int
    size: int
    digest: str = ""
    inner_offset: int = 0


@dataclass(frozen=True, slots=True)
class TocFile:
    """A regular file of the TOC: its entry, whole-content digest and chunks in file order."""

    entry: TarEntry
    digest: str
    chunks: tuple[TocChunk, ...]


@dataclass(frozen=True)
class Toc:
    """A layer's table of contents.

    ``entries`` is the listing in tar order, with the format's own entries (``TOC_ARTIFACTS``)
    hidden; their ``offset`` is 0, since a TOC records compressed offsets, not tar ones.
    ``files`` maps the display path of each regular file to where its data lives (a path
    written twice keeps its last copy, as when the tar is applied). ``digest`` is the sha256
    of the uncompressed TOC JSON, the layer annotation eStargz records.
    """

    format: TocFormat
    digest: str
    entries: tuple[TarEntry, ...]
    files: Mapping[str, TocFile] = field(repr=False)


# -- finding and reading the TOC ------------------------------------------------------------


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
    return annotations.get(_ZSTD_CHUNKED_PREFIX + key) or annotations.get(
        _ZSTD_CHUNKED_OLD_PREFIX + key, ""
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


async def _fetch_span(fetch: Fetch, start: int, stop: int) -> bytes:
    """Bytes ``start`` up to ``stop`` (exclusive), refusing a short answer."""
    data = await fetch(start, stop - 1)
    if len(data) != stop - start:
        raise CorruptLayer(
            f"asked for bytes {start:,}-{stop - 1:,} of the blob, got {len(data):,}", start
        )
    return data


async def _read_estargz(
    fetch: Fetch, blob_size: int, footer: _EStargzFooter, annotations: Mapping[str, str]
) -> Toc:
    end = blob_size - footer.size
    if not 0 <= footer.toc_offset < end or end - footer.toc_offset > MAX_TOC_BYTES:
        raise CorruptLayer(f"eStargz footer points at a TOC at {footer.toc_offset:,}")
    member = await _fetch_span(fetch, footer.toc_offset, end)
    toc_json = await anyio.to_thread.run_sync(_estargz_json, member)
    _verify_toc(toc_json, annotations.get(ESTARGZ_TOC_DIGEST, ""), "eStargz TOC")
    return await anyio.to_thread.run_sync(parse_toc, "estargz", toc_json, footer.toc_offset)


def _estargz_json(member: bytes) -> bytes:
    """``stargz.index.json`` out of the TOC member (a gzip member holding a small tar)."""
    tar = _inflate("gzip", member, MAX_TOC_BYTES + (64 << 10), "eStargz TOC")
    scanner = TarScanner(want=lambda entry: entry.path == ESTARGZ_TOC_NAME)
    try:
        events = scanner.feed(tar)
    except LayerError as error:
        raise CorruptLayer(f"eStargz TOC member is not a tar entry ({error})") from error
    data = [e for e in events if isinstance(e, FileData) and e.entry.path == ESTARGZ_TOC_NAME]
    if not data or not data[-1].last:
        raise CorruptLayer(f"eStargz TOC member holds no complete {ESTARGZ_TOC_NAME}")
    return b"".join(piece.data for piece in data)


async def _read_zstd(
    fetch: Fetch, blob_size: int, manifest: _ZstdManifest, annotations: Mapping[str, str]
) -> Toc:
    if manifest.kind != _MANIFEST_TYPE_CRFS:
        raise CorruptLayer(f"unknown zstd:chunked manifest type {manifest.kind}")
    stop = manifest.offset + manifest.compressed
    too_big = max(manifest.compressed, manifest.uncompressed) > MAX_TOC_BYTES
    if manifest.offset < _ZSTD_SKIPPABLE_HEADER or stop > blob_size or too_big:
        raise CorruptLayer(
            f"zstd:chunked manifest at {manifest.offset:,} ({manifest.compressed:,} bytes, "
            f"{manifest.uncompressed:,} inflated) does not fit a {blob_size:,}-byte blob"
        )
    compressed = await _fetch_span(fetch, manifest.offset, stop)
    checksum = _zstd_annotation(annotations, "manifest-checksum")
    _verify_toc(compressed, checksum, "zstd:chunked manifest")
    toc_json = await anyio.to_thread.run_sync(
        _inflate, "zstd", compressed, manifest.uncompressed, "zstd:chunked manifest"
    )
    if len(toc_json) != manifest.uncompressed:
        raise CorruptLayer(
            f"zstd:chunked manifest is {len(toc_json):,} bytes, its position says "
            f"{manifest.uncompressed:,}"
        )
    data_end = manifest.offset - _ZSTD_SKIPPABLE_HEADER
    return await anyio.to_thread.run_sync(parse_toc, "zstd:chunked", toc_json, data_end)


def _inflate(kind: Compression, data: bytes, cap: int, what: str) -> bytes:
    """Decompress a whole (small) member or frame, refusing more than ``cap`` bytes out."""
    decompressor = make_decompressor(kind)
    out = bytearray()
    try:
        for piece in decompressor.feed(data):
            out += piece
            if len(out) > cap:
                raise CorruptLayer(f"{what} inflates past {cap:,} bytes")
        decompressor.finish()
    except LayerError as error:
        raise CorruptLayer(f"{what} does not decompress ({error})") from error
    return bytes(out)


def _verify_toc(data: bytes, expected: str, what: str) -> None:
    """Check ``data`` against an annotation's digest; no annotation, nothing to check."""
    if expected and _digest(data, expected) != expected:
        raise CorruptLayer(f"{what} does not match its annotation digest {expected}")


def _digest(data: bytes, like: str) -> str:
    """``data``'s digest in the algorithm ``like`` names (sha256, sha512...)."""
    algorithm = like.partition(":")[0]
    if algorithm not in hashlib.algorithms_guaranteed:
        raise CorruptLayer(f"unsupported digest algorithm in {like[:80]!r}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


# -- parsing the TOC JSON --------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """A regular file whose ``chunk`` entries may still follow it in the TOC."""

    entry: TarEntry
    digest: str
    raw: list[dict[str, Any]]


def parse_toc(format: TocFormat, toc_json: bytes, data_end: int) -> Toc:
    """Build a ``Toc`` from the TOC JSON of either format (they share the entry schema).

    ``data_end`` is where the file data region ends (the TOC's own offset): the end of the
    last chunk when the TOC does not record chunk ends. Raises ``CorruptLayer`` for JSON that
    is not a version 1 TOC or whose chunks do not tile their files.
    """
    try:
        # A TOC of tens of thousands of entries is megabytes of JSON, parsed in one call that
        # holds the GIL: orjson keeps that under the event loop's budget (json: ~90 ms for
        # 24k entries, orjson: ~35 ms).
        document = orjson.loads(toc_json)
    except (ValueError, UnicodeDecodeError) as error:
        raise CorruptLayer(f"{format} TOC is not JSON ({error})") from None
    if not isinstance(document, dict):
        document = {}
    raw_entries = document.get("entries")
    if document.get("version") != 1 or not isinstance(raw_entries, list):
        raise CorruptLayer(f"{format} TOC is not a version 1 TOC with an entries list")
    if not all(isinstance(raw, dict) for raw in raw_entries):
        raise CorruptLayer(f"{format} TOC has an entry that is not an object")
    offsets = sorted({_int(raw, "offset") for raw in raw_entries if raw.get("offset")})
    entries, pending = _walk(raw_entries)
    files = {p.entry.path: _toc_file(p, offsets, data_end) for p in pending}
    return Toc(format, _digest(toc_json, "sha256:"), tuple(entries), files)


def _walk(raw_entries: list[dict[str, Any]]) -> tuple[list[TarEntry], list[_Pending]]:
    """Entries to list, and each regular file with the raw entries describing its chunks."""
    entries: list[TarEntry] = []
    files: list[_Pending] = []
    for raw in raw_entries:
        if raw.get("type") == "chunk":
            if not files or raw.get("name") != files[-1].raw[0].get("name"):
                raise CorruptLayer(f"TOC chunk of {_text(raw, 'name')!r} follows no such file")
            files[-1].raw.append(raw)
            continue
        entry = _entry(raw)
        if entry.path in TOC_ARTIFACTS:
            continue
        entries.append(entry)
        if entry.type == "file":
            files.append(_Pending(entry, _text(raw, "digest"), [raw]))
    return entries, files


def _entry(raw: dict[str, Any]) -> TarEntry:
    """A TOC entry as the tar scanner would report the same tar header."""
    name, kind = _text(raw, "name"), _text(raw, "type")
    if kind not in _TYPES:
        raise CorruptLayer(f"TOC entry {name[:80]!r} has unknown type {kind[:20]!r}")
    entry_type = _TYPES[kind]
    link = _text(raw, "linkName")
    return TarEntry(
        path=display_path(name),
        type=_whiteout_type(name, entry_type),
        size=_int(raw, "size") if entry_type == "file" else 0,
        mode=_int(raw, "mode") & 0o7777,
        uid=_int(raw, "uid"),
        gid=_int(raw, "gid"),
        mtime=_mtime(raw),
        link=display_path(link) if entry_type == "hardlink" else link,
    )


def _toc_file(pending: _Pending, offsets: Sequence[int], data_end: int) -> TocFile:
    """Turn a file's raw chunk entries into spans that tile the file exactly."""
    size, path = pending.entry.size, pending.entry.path
    chunks: list[TocChunk] = []
    position = 0
    for index, raw in enumerate(pending.raw if size else ()):
        following = pending.raw[index + 1] if index + 1 < len(pending.raw) else None
        next_start = _int(following, "chunkOffset") if following else size
        start = _int(raw, "chunkOffset")
        length = _int(raw, "chunkSize") or next_start - start
        offset = _int(raw, "offset")
        end = _int(raw, "endOffset") or _next_offset(offsets, offset, data_end)
        if start != position or length <= 0 or not 0 <= offset < end <= data_end:
            raise CorruptLayer(f"TOC chunks of {path!r} do not tile the file")
        digest = _text(raw, "chunkDigest")
        chunks.append(TocChunk(offset, end, start, length, digest, _int(raw, "innerOffset")))
        position = start + length
    if position != size:
        raise CorruptLayer(f"TOC chunks of {path!r} cover {position:,} of {size:,} bytes")
    return TocFile(pending.entry, pending.digest, tuple(chunks))


def _next_offset(offsets: Sequence[int], offset: int, data_end: int) -> int:
    """The next data offset after ``offset``: where the member holding its data ends at most."""
    index = bisect.bisect_right(offsets, offset)
    return offsets[index] if index < len(offsets) else data_end


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if type(value) is not int or value < 0:
        raise CorruptLayer(f"TOC entry {str(raw.get('name'))[:80]!r} has a bad {key}: {value!r}")
    return value


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise CorruptLayer(f"TOC entry {str(raw.get('name'))[:80]!r} has a bad {key}: {value!r}")
    return value


def _mtime(raw: dict[str, Any]) -> int:
    """Whole seconds from RFC 3339 text (eStargz: seconds; zstd:chunked: nanoseconds)."""
    text = _text(raw, "modtime")
    if not text:
        return 0
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CorruptLayer(f"TOC entry has a bad modtime {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(seconds=1)


# -- reading one file ------------------------------------------------------------------------


async def read_toc_file(fetch: Fetch, toc: Toc, path: str) -> AsyncIterator[bytes]:
    """Stream a regular file's bytes, fetching only its chunks.

    Chunks whose compressed spans touch share range requests of up to ``WINDOW`` bytes. Each
    chunk is checked against its TOC digest before it is yielded, and the whole file against
    the file's digest at the end: ``DigestMismatch`` if either differs.
    """
    file = toc.files.get(display_path(path))
    if file is None:
        raise FileNotInLayer(f"{path} is not a regular file in this layer's TOC")
    kind = _COMPRESSION[toc.format]
    whole = _Hash(file.digest, f"{file.entry.path} does not match its TOC digest")
    for run in _runs(file.chunks):
        windows = _Windows(fetch, run[-1].end)
        for chunk in run:
            async for piece in _chunk_bytes(windows, chunk, kind, file.entry.path):
                whole.update(piece)
                yield piece
    whole.verify()


def _runs(chunks: Sequence[TocChunk]) -> Iterator[list[TocChunk]]:
    """Group chunks whose compressed spans touch or overlap, to fetch them together."""
    run: list[TocChunk] = []
    run_end = 0
    for chunk in chunks:
        if run and not run[-1].offset <= chunk.offset <= run_end:
            yield run
            run = []
        run.append(chunk)
        run_end = max(run_end, chunk.end) if len(run) > 1 else chunk.end
    if run:
        yield run


class _Windows:
    """Serves slices of one run of chunks, fetching it forward in ``WINDOW``-sized requests."""

    def __init__(self, fetch: Fetch, end: int) -> None:
        self._fetch = fetch
        self._end = end
        self._at = 0
        self._data = b""

    async def read(self, start: int, stop: int) -> bytes:
        """The next bytes from ``start`` (before ``stop``) that one window holds."""
        if not self._at <= start < self._at + len(self._data):
            self._data = await _fetch_span(self._fetch, start, min(start + WINDOW, self._end))
            self._at = start
        return self._data[start - self._at : stop - self._at]


class _Hash:
    """A running digest checked against the TOC's (no digest recorded: nothing to check)."""

    def __init__(self, expected: str, message: str) -> None:
        self._expected = expected
        self._message = message
        self._hash: hashlib._Hash | None = None
        if expected:
            algorithm = expected.partition(":")[0]
            if algorithm not in hashlib.algorithms_guaranteed:
                raise CorruptLayer(f"unsupported digest algorithm in {expected[:80]!r}")
            self._hash = hashlib.new(algorithm)

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)

    def verify(self) -> None:
        if self._hash is None:
            return
        algorithm = self._expected.partition(":")[0]
        if f"{algorithm}:{self._hash.hexdigest()}" != self._expected:
            raise DigestMismatch(self._message)


async def _chunk_bytes(
    windows: _Windows, chunk: TocChunk, kind: Compression, path: str
) -> AsyncIterator[bytes]:
    """Decompress one chunk's span, skip ``inner_offset``, yield its ``size`` bytes verified."""
    decompressor = make_decompressor(kind)
    check = _Hash(
        chunk.digest,
        f"{path}: the chunk at file offset {chunk.chunk_offset:,} does not match its TOC digest",
    )
    skip, left = chunk.inner_offset, chunk.size
    position = chunk.offset
    while left and position < chunk.end:
        compressed = await windows.read(position, chunk.end)
        position += len(compressed)
        pieces = decompressor.feed(compressed)
        while left:
            batch = await anyio.to_thread.run_sync(_pull, pieces, skip + left)
            if not batch:
                break
            for piece in batch:
                cut = min(skip, len(piece))
                skip -= cut
                data = piece[cut : cut + left]
                if data:
                    left -= len(data)
                    check.update(data)
                    yield data
    if left:
        raise CorruptLayer(
            f"{path}: the chunk at blob offset {chunk.offset:,} holds "
            f"{chunk.size - left:,} of the {chunk.size:,} bytes its TOC promises",
            chunk.offset,
        )
    check.verify()


def _pull(pieces: Iterator[bytes], want: int) -> list[bytes]:
    """Decompress (in a worker thread) until ``want`` bytes or ``_STEP`` bytes are out."""
    batch: list[bytes] = []
    total = 0
    try:
        for piece in pieces:
            batch.append(piece)
            total += len(piece)
            if total >= min(want, _STEP):
                break
    except LayerError as error:
        raise CorruptLayer(f"a TOC chunk does not decompress ({error})") from error
    return batch
