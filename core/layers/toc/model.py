"""What a layer's TOC says: its listing and, for each regular file, the chunks that hold its
data, with the names and annotations both formats use.

``TocBuilder`` turns the TOC's raw entries, one at a time as the JSON is parsed
(``jsonstream``), into a ``Toc``: entries as the tar scanner would report them, and chunk
tables checked to tile each file exactly.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from layerpeek.core.errors import CorruptLayer
from layerpeek.core.layers.entry import (
    EntryType,
    Limits,
    Tally,
    TarEntry,
    cut_text,
    display_path,
    whiteout_type,
)

Fetch = Callable[[int, int], Awaitable[bytes]]
"""``fetch(start, end)``: bytes ``start``..``end`` inclusive of the blob; a negative ``start``
asks for the last ``-start`` bytes (``end`` is then ignored), like ``RegistryClient.fetch_range``.
"""
TocFormat = Literal["estargz", "zstd:chunked"]

ESTARGZ_TOC_DIGEST = "containerd.io/snapshot/stargz/toc.digest"
ESTARGZ_TOC_NAME = "stargz.index.json"
ZSTD_CHUNKED_PREFIX = "io.github.containers.zstd-chunked."
# Older writers used this prefix for the same annotations.
ZSTD_CHUNKED_OLD_PREFIX = "io.containers.zstd-chunked."
ZSTD_CHUNKED_POSITION = ZSTD_CHUNKED_PREFIX + "manifest-position"
ZSTD_CHUNKED_CHECKSUM = ZSTD_CHUNKED_PREFIX + "manifest-checksum"
TOC_ARTIFACTS = frozenset({ESTARGZ_TOC_NAME, ".prefetch.landmark", ".no.prefetch.landmark"})
"""Entries the eStargz format adds to the tar for its own use; listings hide them."""
MAX_TOC_BYTES = 50 << 20
"""Largest TOC accepted, compressed or not: containers/storage's own manifest limit, past
which it pulls the layer whole, as a listing then scans it. A TOC takes ~230 bytes an entry
(~300 for a regular file: name, time, two sha256 digests, offsets), so this is a TOC of
~200,000 entries: larger layers are listed by scanning, at the cost of reading the blob.
Parsed, a TOC holds ``TarEntry``s like a scan, and ``entry.LAYER_LIMITS`` applies to them."""

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


class TocBuilder:
    """Turns raw TOC entries, one at a time, into the listing and the files' chunks.

    Chunks are kept as columns of integers and a ``TocFile`` is built only when asked for:
    a TOC of tens of thousands of files then leaves one object per entry on the heap (its
    ``TarEntry``), not four (with a ``TocFile``, a ``TocChunk`` and their tuple). Each object
    the garbage collector tracks lengthens its full collections, which run in whichever
    thread is allocating, holding the interpreter lock: with four per entry, a 24,000-entry
    TOC set off several of them, each stalling the event loop for a long moment.
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
