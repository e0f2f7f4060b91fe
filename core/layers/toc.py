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
import codecs
import hashlib
import json
import json.scanner
import re
import struct
import zlib
from array import array
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import anyio.to_thread

from layerpeek.core.errors import (
    CorruptLayer,
    DigestMismatch,
    FileNotInLayer,
    LayerError,
    LayerpeekError,
)
from layerpeek.core.layers.compression import Compression, make_decompressor
from layerpeek.core.layers.entry import (
    LAYER_LIMITS,
    EntryType,
    Limits,
    Tally,
    TarEntry,
    cut_text,
    display_path,
    whiteout_type,
)
from layerpeek.core.layers.tar.scanner import FileData, TarScanner

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
"""Largest TOC accepted, compressed or not: containers/storage's own manifest limit, past
which it pulls the layer whole, as a listing then scans it. A TOC takes ~230 bytes an entry
(~300 for a regular file: name, time, two sha256 digests, offsets), so this is a TOC of
~200,000 entries: larger layers are listed by scanning, at the cost of reading the blob.
Parsed, a TOC holds ``TarEntry``s like a scan, and ``entry.LAYER_LIMITS`` applies to them."""
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
_BLANK = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
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
    if not 0 <= footer.toc_offset < end:
        raise CorruptLayer(f"eStargz footer points at a TOC at {footer.toc_offset:,}")
    if end - footer.toc_offset > MAX_TOC_BYTES:
        raise CorruptLayer(_too_large("eStargz TOC", end - footer.toc_offset))
    member = await _fetch_span(fetch, footer.toc_offset, end)
    expected = annotations.get(ESTARGZ_TOC_DIGEST, "")
    return await anyio.to_thread.run_sync(_estargz_toc, member, expected, footer.toc_offset)


def _estargz_toc(member: bytes, expected: str, data_end: int) -> Toc:
    """Inflate, hash and parse the TOC member as one stream (in a worker thread)."""
    mismatch = f"eStargz TOC does not match its annotation digest {expected}"
    check = _Hash(expected, mismatch, CorruptLayer)
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
    compressed = await _fetch_span(fetch, manifest.offset, stop)
    checksum = _zstd_annotation(annotations, "manifest-checksum")
    data_end = manifest.offset - _ZSTD_SKIPPABLE_HEADER
    return await anyio.to_thread.run_sync(
        _zstd_toc, compressed, checksum, manifest.uncompressed, data_end
    )


def _zstd_toc(compressed: bytes, checksum: str, size: int, data_end: int) -> Toc:
    """Check the compressed manifest, then inflate and parse it as one stream (in a worker
    thread)."""
    mismatch = f"zstd:chunked manifest does not match its annotation digest {checksum}"
    check = _Hash(checksum, mismatch, CorruptLayer)
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


def _hasher(like: str) -> hashlib._Hash:
    """A fresh hash of the algorithm the digest ``like`` names (sha256, sha512...)."""
    algorithm = like.partition(":")[0]
    if algorithm not in hashlib.algorithms_guaranteed:
        raise CorruptLayer(f"unsupported digest algorithm in {like[:80]!r}")
    return hashlib.new(algorithm)


# -- parsing the TOC JSON --------------------------------------------------------------------


def parse_toc(
    format: TocFormat, pieces: Iterable[bytes], data_end: int, limits: Limits = LAYER_LIMITS
) -> Toc:
    """Build a ``Toc`` from the TOC JSON of either format (they share the entry schema), read
    from ``pieces`` as they come: the document is never whole in memory, nor as a tree.

    Tens of thousands of entries are megabytes of JSON. Parsed in one call, that holds the
    interpreter lock for tens of milliseconds (the event loop stalls beside the worker
    thread) and keeps every entry's dict alive at once; here each entry is one short call
    and its dict is dropped once it is read. ``data_end`` is where the file data region
    ends (the TOC's own offset): the end of the last chunk when the TOC does not record
    chunk ends. Raises ``CorruptLayer`` for JSON that is not a version 1 TOC or whose chunks
    do not tile their files, and ``LayerTooLarge`` for a TOC that lists more than ``limits``
    allows a layer: a scan of the layer would meet the same entries, so there is nothing to
    fall back to.
    """
    digest = hashlib.sha256()
    builder = _TocBuilder(limits._replace(what=f"layer's {format} TOC"))
    for raw in _raw_entries(_JsonText(_digesting(pieces, digest), format), format):
        builder.add(raw)
    entries, files = builder.finish(data_end)
    return Toc(format, f"sha256:{digest.hexdigest()}", entries, files)


def _digesting(pieces: Iterable[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    """``pieces`` passed through, each added to ``digest`` on its way."""
    for piece in pieces:
        digest.update(piece)
        yield piece


class _JsonText:
    """JSON text read from byte pieces, one value at a time, through the stdlib's C scanner.

    Only the text not yet parsed is kept. A value cut by the end of the text read so far
    (or a number that might go on) is parsed again once the text after its start has at
    least doubled, so values of any length cost linear time.
    """

    def __init__(self, pieces: Iterable[bytes], format: TocFormat) -> None:
        self._pieces = iter(pieces)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._scan = json.scanner.make_scanner(json.JSONDecoder())
        self._format = format
        self._text = ""
        self._at = 0
        self._dropped = 0  # characters before ``_text``, for positions in error messages
        self._ended = False

    def peek(self) -> str:
        """The next character that is not blank, or "" at the end of the document."""
        while True:
            self._at = _BLANK.match(self._text, self._at).end()
            if self._at < len(self._text):
                return self._text[self._at]
            if not self._more():
                return ""

    def take(self, allowed: str) -> str:
        """Consume the next non-blank character, which must be one of ``allowed``."""
        char = self.peek()
        if not char or char not in allowed:
            found = repr(char) if char else "the end"
            raise self.error(f"expected {' or '.join(map(repr, allowed))}, found {found}")
        self._at += 1
        return char

    def value(self) -> Any:
        """Parse the next value (an entry, a key, a number...)."""
        self.peek()
        while True:
            try:
                value, end = self._scan(self._text, self._at)
            except (StopIteration, ValueError, RecursionError):
                value, end = None, -1
            if 0 <= end < len(self._text) or self._ended:
                if end < 0:
                    raise self.error("not a valid value")
                self._at = end
                return value
            wanted = 2 * (len(self._text) - self._at)
            while self._more() and len(self._text) - self._at < wanted:
                pass

    def error(self, what: str) -> CorruptLayer:
        return CorruptLayer(
            f"{self._format} TOC is not JSON ({what} at character {self._dropped + self._at:,})"
        )

    def _more(self) -> bool:
        """Append the next decoded piece, dropping the text already parsed; False at the end."""
        if self._ended:
            return False
        for piece in self._pieces:
            try:
                text = self._utf8.decode(piece)
            except UnicodeDecodeError as error:
                raise self.error(f"not UTF-8: {error.reason}") from None
            if text:
                self._dropped += self._at
                self._text = self._text[self._at :] + text
                self._at = 0
                return True
        try:
            self._utf8.decode(b"", final=True)
        except UnicodeDecodeError as error:
            raise self.error(f"not UTF-8: {error.reason}") from None
        self._ended = True
        return False


def _raw_entries(document: _JsonText, format: TocFormat) -> Iterator[dict[str, Any]]:
    """Each object of the document's ``entries`` list, in order, as it is parsed."""
    not_a_toc = CorruptLayer(f"{format} TOC is not a version 1 TOC with an entries list")
    if document.peek() != "{":
        document.value()  # JSON that is not an object, or not JSON at all: say which
        raise not_a_toc
    document.take("{")
    version, listed = None, False
    more = document.peek() != "}"
    if not more:
        document.take("}")
    while more:
        if document.peek() != '"':
            raise document.error("expected a key")
        key = document.value()
        document.take(":")
        if key != "entries":
            value = document.value()
            version = value if key == "version" else version
        elif listed or version not in (None, 1):
            raise not_a_toc
        else:
            yield from _entry_list(document, format)
            listed = True
        more = document.take(",}") == ","
    if document.peek():
        raise document.error("more text after the TOC")
    if version != 1 or not listed:
        raise not_a_toc


def _entry_list(document: _JsonText, format: TocFormat) -> Iterator[dict[str, Any]]:
    document.take("[")
    if document.peek() == "]":
        document.take("]")
        return
    while True:
        raw = document.value()
        if not isinstance(raw, dict):
            raise CorruptLayer(f"{format} TOC has an entry that is not an object")
        yield raw
        if document.take(",]") == "]":
            return


class _TocBuilder:
    """Turns raw TOC entries, one at a time, into the listing and the files' chunks.

    Chunks are kept as columns of integers and a ``TocFile`` is built only when asked for:
    a TOC of tens of thousands of files then leaves one object per entry on the heap (its
    ``TarEntry``), not four (with a ``TocFile``, a ``TocChunk`` and their tuple). Each object
    the garbage collector tracks lengthens its full collections, which run in whichever
    thread is allocating, holding the interpreter lock: with four per entry, a 24,000-entry
    TOC set off two or three of them, each stalling the event loop for 50-100 ms.
    """

    def __init__(self, limits: Limits) -> None:
        self.entries: list[TarEntry] = []
        self.tally = Tally(limits)
        self.chunks = _Chunks()  # as the TOC gives them: ``end`` and ``size`` may be 0
        self._offsets = array("q")  # every data offset, where chunk ends are not recorded
        self._name: object = None  # the raw name of the last file: its chunks repeat it
        self._mtimes: dict[str, int] = {}  # most entries share a handful of times

    def add(self, raw: dict[str, Any]) -> None:
        offset = _int(raw, "offset")
        if offset:
            self._offsets.append(offset)
        if raw.get("type") == "chunk":
            if self._name is None or raw.get("name") != self._name:
                raise CorruptLayer(f"TOC chunk of {_text(raw, 'name')!r} follows no such file")
            self.chunks.add(raw, offset)
            return
        entry = _entry(raw, self._mtimes)
        if entry.path in TOC_ARTIFACTS:
            return
        self.tally.add(entry)
        self.entries.append(entry)
        if entry.type == "file":
            self.chunks.start_file(entry, _text(raw, "digest"))
            self.chunks.add(raw, offset)
            self._name = raw.get("name")

    def finish(self, data_end: int) -> tuple[tuple[TarEntry, ...], _TocFiles]:
        """The listing and the files, each file's chunks checked to tile it exactly."""
        chunks = self.chunks.close()
        offsets = sorted(set(self._offsets))
        for number, entry in enumerate(chunks.entries):
            if entry.size:
                _tile(chunks, number, offsets, data_end)
        return tuple(self.entries), _TocFiles(chunks)


def _tile(chunks: _Chunks, number: int, offsets: Sequence[int], data_end: int) -> None:
    """Fill in the chunk ends and sizes file ``number``'s TOC entries leave out, checking
    that its chunks cover the file exactly, in order."""
    entry, stop = chunks.entries[number], chunks.first[number + 1]
    position = 0
    for index in range(chunks.first[number], stop):
        start, offset = chunks.start[index], chunks.offset[index]
        next_start = chunks.start[index + 1] if index + 1 < stop else entry.size
        length = chunks.size[index] or next_start - start
        end = chunks.end[index] or _next_offset(offsets, offset, data_end)
        if start != position or length <= 0 or not 0 <= offset < end <= data_end:
            raise CorruptLayer(f"TOC chunks of {entry.path!r} do not tile the file")
        chunks.size[index], chunks.end[index] = length, end
        position = start + length
    if position != entry.size:
        raise CorruptLayer(
            f"TOC chunks of {entry.path!r} cover {position:,} of {entry.size:,} bytes"
        )


class _Chunks:
    """Files and their chunks as parallel columns: file ``n`` owns chunks ``first[n]`` up to
    ``first[n + 1]`` (none if it is empty, whatever its TOC entry says)."""

    def __init__(self) -> None:
        self.entries: list[TarEntry] = []
        self.digests: list[str] = []
        self.first = array("q")
        self.offset, self.end, self.start = array("q"), array("q"), array("q")
        self.size, self.inner = array("q"), array("q")
        self.chunk_digests: list[str] = []

    def start_file(self, entry: TarEntry, digest: str) -> None:
        self.entries.append(entry)
        self.digests.append(digest)
        self.first.append(len(self.offset))

    def add(self, raw: dict[str, Any], offset: int) -> None:
        """A chunk as the TOC records it (``end`` and ``size`` 0 where it does not)."""
        self.offset.append(offset)
        self.end.append(_int(raw, "endOffset"))
        self.start.append(_int(raw, "chunkOffset"))
        self.size.append(_int(raw, "chunkSize"))
        self.inner.append(_int(raw, "innerOffset"))
        digest = _text(raw, "chunkDigest")
        # A one-chunk file's chunk digest is its file digest: keep one string for both.
        self.chunk_digests.append(self.digests[-1] if digest == self.digests[-1] else digest)

    def close(self) -> _Chunks:
        """Mark the end of the last file's chunks."""
        self.first.append(len(self.offset))
        return self


class _TocFiles(Mapping[str, TocFile]):
    """The regular files of a TOC by display path, each ``TocFile`` built when it is asked
    for (a path written twice keeps its last copy, as when the tar is applied)."""

    def __init__(self, chunks: _Chunks) -> None:
        self._chunks = chunks
        self._numbers = {
            entry.path: number for number, entry in enumerate(chunks.entries) if not entry.cut
        }

    def __getitem__(self, path: str) -> TocFile:
        number, c = self._numbers[path], self._chunks
        entry = c.entries[number]
        span = range(c.first[number], c.first[number + 1]) if entry.size else range(0)
        return TocFile(
            entry,
            c.digests[number],
            tuple(
                TocChunk(
                    c.offset[i], c.end[i], c.start[i], c.size[i], c.chunk_digests[i], c.inner[i]
                )
                for i in span
            ),
        )

    def __contains__(self, path: object) -> bool:
        return path in self._numbers

    def __iter__(self) -> Iterator[str]:
        return iter(self._numbers)

    def __len__(self) -> int:
        return len(self._numbers)


def _entry(raw: dict[str, Any], mtimes: dict[str, int]) -> TarEntry:
    """A TOC entry as the tar scanner would report the same tar header, names longer than
    ``NAME_LIMIT`` bytes cut and the entry marked ``cut`` as the scanner does."""
    name, kind = _text(raw, "name"), _text(raw, "type")
    if kind not in _TYPES:
        raise CorruptLayer(f"TOC entry {name[:80]!r} has unknown type {kind[:20]!r}")
    entry_type = _TYPES[kind]
    link = _text(raw, "linkName")
    cut_path, cut_link = cut_text(name), cut_text(link)
    name, link = cut_path or name, cut_link or link
    modtime = _text(raw, "modtime")
    if modtime not in mtimes:
        mtimes[modtime] = _mtime(modtime)
    return TarEntry(
        path=display_path(name),
        type=whiteout_type(name, entry_type),
        size=_int(raw, "size") if entry_type == "file" else 0,
        mode=_int(raw, "mode") & 0o7777,
        uid=_int(raw, "uid"),
        gid=_int(raw, "gid"),
        mtime=mtimes[modtime],
        link=display_path(link) if entry_type == "hardlink" else link,
        cut=cut_path is not None or cut_link is not None,
    )


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


def _mtime(text: str) -> int:
    """Whole seconds from RFC 3339 text (eStargz: seconds; zstd:chunked: nanoseconds)."""
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
    """A running digest checked against the one recorded for the data (none recorded: nothing
    to check); a mismatch raises ``error`` with ``message``."""

    def __init__(
        self, expected: str, message: str, error: type[LayerpeekError] = DigestMismatch
    ) -> None:
        self._expected = expected
        self._message = message
        self._error = error
        self._hash = _hasher(expected) if expected else None

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)

    def hashed(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        """``pieces`` passed through, each added to the digest on its way."""
        return iter(pieces) if self._hash is None else _digesting(pieces, self._hash)

    def verify(self) -> None:
        if self._hash is None:
            return
        if f"{self._hash.name}:{self._hash.hexdigest()}" != self._expected:
            raise self._error(self._message)


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
