"""A lean push parser for tar streams: 512-byte headers in, ``TarEntry`` events out.

``tarfile`` costs far more pure Python per entry and wants a file object to pull from;
layers arrive as pushed chunks and only the headers matter for a listing, so this scanner
parses headers with a handful of slices per entry and skips file data by counting, never
buffering it. It understands the dialects found in real layers: v7, ustar (prefix + name),
GNU (``L``/``K`` long names, base-256 numbers, old sparse ``S``, ``D`` dumpdirs, ``V``
labels), PAX (``x`` per entry, ``g`` global) and Solaris (``X`` extended headers, ``A``
ACLs). What a layer contains is what Go's ``archive/tar`` reads and containerd's apply
extracts (what Docker runs), and GNU tar's reading where Go has none:

- the stream may end at any header boundary: after two zero blocks, one, or none;
- a PAX global header (``g``) applies to nothing: Go hands it back as a header of its own
  and containerd skips it;
- ``X`` is a PAX extended header, ``D`` a directory (its data, a list of names, skipped),
  ``V`` and ``A`` are no entries (their data is never offered as a file);
- a PAX path or link name ends at a NUL (GNU tar; Go refuses the header);
- a PAX header of any size is read record by record (``pax.PaxParser``; Go refuses one
  over 1 MiB, GNU tar lists it).

Names are reported, never used: nothing here touches the local filesystem. What one layer
can make the scanner hold is capped: a PAX record at ``pax.RECORD_LIMIT`` (longer ones
are dropped unless they name the entry), a path or link name at ``NAME_LIMIT`` (longer
ones are cut and the entry marked ``cut``), the entries and characters of names of a layer
at ``LAYER_LIMITS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from layerpeek.core.errors import CorruptLayer, HostileLayer, TruncatedLayer
from layerpeek.core.layers.entry import LAYER_LIMITS, NAME_LIMIT, Limits, TarEntry
from layerpeek.core.layers.tar.header import (
    BLOCK,
    FIELDS,
    META_TYPES,
    NOT_ENTRIES,
    PAX_TYPES,
    PLAIN_TYPES,
    ZERO_BLOCK,
    Header,
    apply_pax,
    build_entry,
    checked_size,
    padding,
    plain_entry,
    read_fields,
    verify_checksum,
)
from layerpeek.core.layers.tar.numbers import tar_number
from layerpeek.core.layers.tar.pax import CutName, PaxParser, header_name
from layerpeek.core.layers.tar.sparse import (
    MAP_LIMIT,
    Fragment,
    SparseFile,
    gnu_fragments,
    pax_fragments,
    zero_chunks,
)


@dataclass(frozen=True, slots=True)
class FileData:
    """A piece of a wanted file's content, in order; ``last`` is set on its final piece.

    An empty file still gets one event (``data=b""``, ``last=True``) so a reader always sees
    where the file ends. ``zeros`` counts zero bytes of the file that come before ``data``:
    a sparse file's hole, never held in memory.
    """

    entry: TarEntry
    data: bytes
    last: bool
    zeros: int = 0

    def content(self) -> Iterator[bytes]:
        """This piece's bytes of the file, in order: its hole's zeros (in shared chunks of at
        most 1 MiB, ``sparse.zero_chunks``), then ``data``; nothing for an empty piece."""
        yield from zero_chunks(self.zeros)
        if self.data:
            yield self.data


ScanEvent = TarEntry | FileData
Want = Callable[[TarEntry], bool]


@dataclass(slots=True)
class _Pending:
    """Extended headers read since the last entry; they apply to the next entry only."""

    pax: dict[str, str] = field(default_factory=dict)
    long_name: str | None = None
    long_link: str | None = None


class TarScanner:
    """Push tar bytes in with ``feed``, get entries (and wanted file data) out.

    ``want``, when given, is asked about every regular file; the data of a wanted file comes
    out as ``FileData`` events right after its ``TarEntry``, piece by piece as it arrives, so
    ``cat`` of a 1 GB file holds one chunk at a time (a sparse file's holes come as counts).
    ``entries`` counts the entries reported so far (``names`` the characters of their paths
    and link names), and ``done`` turns true at the end-of-archive marker (two zero blocks),
    after which any further bytes (GNU tar's record padding) are ignored; a stream may also
    just end, after one zero block or none, at a header boundary (``close``). A layer with
    more of either than ``limits`` allows is refused (``LayerTooLarge``) at the first entry
    past them. A ``cut`` entry is never offered to ``want``: its name is not the one in the
    layer.

    Between headers the scanner is in one of four states: skipping ``_skip`` bytes (data it
    does not want, padding), reading an extended header's body (``_meta``), streaming a
    wanted file (``_file``, or ``_sparse_file`` rebuilding a sparse one), or reading old GNU
    sparse extension blocks (``_sparse``).
    """

    def __init__(self, want: Want | None = None, limits: Limits = LAYER_LIMITS) -> None:
        self.entries = 0
        self.names = 0
        self._limits = limits
        self._max_entries, self._max_names = limits.entries, limits.names
        self.done = False
        self._want = want
        self._total = 0
        self._partial = bytearray()
        self._skip = 0
        self._zero_blocks = 0
        self._pending: _Pending | None = None
        self._meta: tuple[bytes, int, int] | None = None  # kind, size, bytes left
        self._pax: PaxParser | None = None  # parses a PAX header's body as it arrives
        self._long = bytearray()  # a GNU long name's first ``NAME_LIMIT + 1`` bytes
        self._file: TarEntry | None = None
        self._file_left = 0
        self._sparse_stored = 0
        self._sparse: tuple[TarEntry, int] | None = None
        self._map: bytes | str | None = None  # the sparse map of the entry being read
        self._map_in_data = False
        self._sparse_file: SparseFile | None = None
        self._last_path = ""
        self._last_end = 0

    def feed(
        self, data: bytes | memoryview, events: list[ScanEvent] | None = None
    ) -> list[ScanEvent]:
        """Scan the next bytes of the stream; return the events they complete, in order.

        Events are appended to ``events`` when given, so a caller keeps those found before
        a LayerError interrupts the call.
        """
        if events is None:
            events = []
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end and not self.done:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
            elif self._file is not None:
                pos = self._take_file(view, pos, end, events)
            elif self._sparse_file is not None:
                pos = self._take_sparse(view, pos, end, events)
            elif self._meta is not None:
                pos = self._take_meta(view, pos, end)
            elif self._partial or end - pos < BLOCK or self._sparse is not None:
                pos = self._take_partial(view, pos, end, events)
            else:
                pos = self._headers(view, pos, end, events)
        self._total += end
        return events

    def close(self) -> None:
        """Raise TruncatedLayer unless the stream ended at a header boundary.

        Two zero blocks mark the end, but Go's reader, GNU tar and tarfile all accept a
        stream that ends after one or none of them (real layers do), so layerpeek does too;
        an extended header with no entry after it is dropped, as Go drops it. A stream of
        zero bytes is an empty layer.
        """
        if self.done or self._total == 0:
            return
        if self._file is not None or self._sparse_file is not None:
            path = self._file.path if self._file is not None else self._sparse_path
            what = f"inside the data of {path!r}"
        elif self._meta is not None or self._sparse is not None:
            what = "inside an extended header"
        elif self._skip and self._total < self._last_end:
            what = f"inside the data of {self._last_path!r}"
        elif self._skip or self._partial:
            what = "inside a header"
        else:
            return
        raise TruncatedLayer(f"tar stream ends {what}", self._total)

    def _take_partial(self, view: memoryview, pos: int, end: int, events: list[ScanEvent]) -> int:
        """Gather a block that straddles two feeds (or a sparse extension block)."""
        step = min(BLOCK - len(self._partial), end - pos)
        self._partial += view[pos : pos + step]
        pos += step
        if len(self._partial) == BLOCK:
            block = bytes(self._partial)
            self._partial.clear()
            if self._sparse is not None:
                self._sparse_block(block, self._total + pos, events)
            else:
                self._header(block, self._total + pos, events)
        return pos

    def _take_file(self, view: memoryview, pos: int, end: int, events: list[ScanEvent]) -> int:
        assert self._file is not None
        step = min(self._file_left, end - pos)
        self._file_left -= step
        last = not self._file_left
        events.append(FileData(self._file, view[pos : pos + step].tobytes(), last))
        if last:
            self._skip = padding(self._file.size)
            self._file = None
        return pos + step

    def _take_sparse(self, view: memoryview, pos: int, end: int, events: list[ScanEvent]) -> int:
        """Rebuild a wanted sparse file from its stored bytes: fragments and hole counts."""
        sparse = self._sparse_file
        assert sparse is not None
        step = min(self._file_left, end - pos)
        self._file_left -= step
        for zeros, data in sparse.feed(view[pos : pos + step]):
            events.append(FileData(sparse.entry, data, False, zeros))
        if not self._file_left:
            self._end_sparse(events)
        return pos + step

    def _end_sparse(self, events: list[ScanEvent]) -> None:
        sparse, self._sparse_file = self._sparse_file, None
        assert sparse is not None
        events.append(FileData(sparse.entry, b"", True, sparse.finish()))
        self._skip = padding(self._sparse_stored)

    @property
    def _sparse_path(self) -> str:
        return self._sparse_file.entry.path if self._sparse_file is not None else ""

    def _take_meta(self, view: memoryview, pos: int, end: int) -> int:
        """The next bytes of an extended header: parsed as they come (PAX), or kept up to
        one byte past the name limit (GNU long names), so no header is held whole."""
        assert self._meta is not None
        kind, size, left = self._meta
        step = min(left, end - pos)
        if self._pax is not None:
            self._pax.feed(view[pos : pos + step])
        elif len(self._long) <= NAME_LIMIT:
            self._long += view[pos : pos + min(step, NAME_LIMIT + 1 - len(self._long))]
        self._meta = (kind, size, left - step)
        if step == left:
            self._meta_done()
        return pos + step

    def _headers(self, view: memoryview, pos: int, end: int, events: list[ScanEvent]) -> int:
        """Read whole header blocks from ``pos`` on, and skip the data between them.

        Almost every entry of a listing comes through here, so the usual header is read and
        its data skipped in this loop, without a round trip through ``feed``'s for each: a
        file, directory or link header, with no extended header pending and no file wanted.
        Any other block goes to ``_header``, and then back to ``feed``: zero blocks, extended
        headers, sparse files, other types. Returns the position after what it consumed.
        """
        if self._pending is not None or self._want is not None or self._zero_blocks:
            pos += BLOCK
            self._header(view[pos - BLOCK : pos].tobytes(), self._total + pos, events)
            return pos
        base = self._total
        while end - pos >= BLOCK:
            fields = FIELDS.unpack_from(view, pos)
            pos += BLOCK
            if fields[7] not in PLAIN_TYPES or not fields[0][0]:  # a zero block has no name
                self._header(view[pos - BLOCK : pos].tobytes(), base + pos, events)
                return pos
            verify_checksum(view[pos - BLOCK : pos], fields[6], base + pos - BLOCK)
            entry, stored = plain_entry(fields, base + pos)
            names = self.names + len(entry.path) + len(entry.link)
            if self.entries >= self._max_entries or names > self._max_names:
                self._refuse(names, base + pos - BLOCK)
            events.append(entry)
            self.entries += 1
            self.names = names
            span = stored + padding(stored)
            if end - pos < span:
                self._skip = span - (end - pos)
                self._last_path, self._last_end = entry.path, entry.offset + span
                return end
            pos += span
        return pos

    def _header(self, block: bytes, data_offset: int, events: list[ScanEvent]) -> None:
        """Handle one complete header block; ``data_offset`` is where its data would start."""
        at = data_offset - BLOCK
        if block == ZERO_BLOCK:
            self._zero_blocks += 1
            self.done = self._zero_blocks == 2
            return
        if self._zero_blocks:
            raise CorruptLayer(f"tar header after a zero block at tar offset {at:,}", at)
        fields = FIELDS.unpack(block)
        verify_checksum(block, fields[6], at)
        kind = fields[7]
        if kind in META_TYPES:
            self._start_meta(kind, checked_size(tar_number(fields[4], "size", at), at), at)
            return
        entry, stored = self._entry(block, fields, data_offset)
        if kind in NOT_ENTRIES:
            self._skip = stored + padding(stored)
            self._last_path, self._last_end = entry.path, data_offset + self._skip
        elif kind == b"S" and block[482]:
            self._sparse = (entry, stored)
        else:
            self._report(entry, stored, events)

    def _sparse_block(self, block: bytes, data_offset: int, events: list[ScanEvent]) -> None:
        """One old GNU sparse extension block; the file's data starts after the last one."""
        assert self._sparse is not None
        if isinstance(self._map, bytes) and len(self._map) <= MAP_LIMIT:
            self._map += block[:504]  # past the limit, a read of the file is refused
        if block[504]:
            return
        (entry, stored), self._sparse = self._sparse, None
        self._report(entry._replace(offset=data_offset), stored, events)

    def _report(self, entry: TarEntry, stored: int, events: list[ScanEvent]) -> None:
        """Emit an entry, then arrange to stream or skip its ``stored`` data bytes.

        A sparse file's stored bytes are its non-hole fragments, not its content, so it is
        never offered to ``want``, and neither is a ``cut`` one.
        """
        names = self.names + len(entry.path) + len(entry.link)
        if self.entries >= self._max_entries or names > self._max_names:
            self._refuse(names, entry.offset - BLOCK)
        events.append(entry)
        self.entries += 1
        self.names = names
        span = stored + padding(stored)
        self._last_path, self._last_end = entry.path, entry.offset + span
        if entry.type != "file" or self._want is None or entry.cut or not self._want(entry):
            self._skip = span
        elif entry.sparse:
            self._start_sparse(entry, stored, events)
        elif stored:
            self._file, self._file_left = entry, stored
        else:
            events.append(FileData(entry, b"", True))

    def _refuse(self, names: int, at: int) -> None:
        """Stop at an entry the layer's limits have no room for (the ones before it stay)."""
        refusal = self._limits.refusal(self.entries + 1, names)
        raise self._limits.error(f"{refusal} at tar offset {at:,}", at)

    def _start_sparse(self, entry: TarEntry, stored: int, events: list[ScanEvent]) -> None:
        """Rebuild a wanted sparse file from the map its headers (or its data) hold."""
        at = entry.offset - BLOCK
        fragments: list[Fragment] | None = None
        if self._map is not None and len(self._map) > MAP_LIMIT:
            raise HostileLayer(f"sparse map of {entry.path!r} exceeds the 1 MiB limit", at)
        if isinstance(self._map, bytes):
            fragments = gnu_fragments(self._map, at)
        elif isinstance(self._map, str):
            fragments = pax_fragments(self._map, at)
        elif not self._map_in_data:
            raise CorruptLayer(f"sparse file {entry.path!r} at tar offset {at:,} has no map", at)
        self._sparse_file = SparseFile(entry, fragments, stored, at)
        self._file_left, self._sparse_stored = stored, stored
        if not stored:
            self._end_sparse(events)

    def _start_meta(self, kind: bytes, size: int, at: int) -> None:
        """Start reading an extended header of ``size`` bytes, whatever its size: what is
        kept of it is bounded (``_take_meta``)."""
        self._meta = (kind, size, size)
        self._pax = PaxParser(at) if kind in PAX_TYPES else None
        self._long.clear()
        if not size:
            self._meta_done()

    def _meta_done(self) -> None:
        """Record a complete extended header for the entry after it."""
        assert self._meta is not None
        (kind, size, _), self._meta = self._meta, None
        self._skip = padding(size)
        if self._pax is not None:
            records = self._pax.finish()  # a malformed global header is refused too, as Go
            self._pax = None
            if kind == b"g":
                # A global header is a header of its own to Go, which drops what came before
                # it, and containerd's apply ignores it: it changes no entry.
                self._pending = None
                return
            # Like Go, a second 'x' before an entry replaces the first: memory stays bounded.
            (self._pending or self._new_pending()).pax = records
            return
        name = header_name(bytes(self._long))
        self._long.clear()
        pending = self._pending or self._new_pending()
        if kind == b"L":
            pending.long_name = name
        else:
            pending.long_link = name

    def _new_pending(self) -> _Pending:
        self._pending = _Pending()
        return self._pending

    def _entry(
        self, block: bytes, fields: tuple[bytes, ...], data_offset: int
    ) -> tuple[TarEntry, int]:
        """Build the entry from its header and any pending extended headers.

        Returns the entry, the number of data bytes stored after the header (which differs
        from ``entry.size`` for sparse files and header-only types). A header that no
        extended header amends and that is not sparse is a plain one (``plain_entry``).
        """
        self._map, self._map_in_data = None, False
        kind = fields[7]
        if self._pending is None and kind != b"S":
            return plain_entry(fields, data_offset)
        at = data_offset - BLOCK
        path, link, mode, uid, gid, stored, mtime = read_fields(fields, at)
        header = Header(path, link, stored, stored, uid, gid, mtime, kind == b"S")
        self._amend(header, block, at)
        self._map, self._map_in_data = header.sparse_map, header.map_in_data
        return build_entry(
            kind,
            str(header.path),  # a plain str, whether or not it was a CutName
            str(header.link),
            header.stored,
            header.size,
            mode,
            header.uid,
            header.gid,
            header.mtime,
            data_offset,
            header.sparse,
            isinstance(header.path, CutName) or isinstance(header.link, CutName),
        )

    def _amend(self, header: Header, block: bytes, at: int) -> None:
        """Apply an old GNU sparse header's size and map, then any extended headers."""
        if header.sparse:
            header.size = tar_number(block[483:495], "sparse size", at) or header.stored
            header.sparse_map = block[386:482]
        if self._pending is not None:
            self._apply_extended(header, at)

    def _apply_extended(self, header: Header, at: int) -> None:
        """Apply PAX records, then GNU long names (Go's order)."""
        pending, self._pending = self._pending or _Pending(), None
        apply_pax(header, pending.pax, at)
        if pending.long_name is not None:
            header.path = pending.long_name
        if pending.long_link is not None:
            header.link = pending.long_link
