"""PAX extended headers read record by record, so that their size does not set the memory.

A PAX header is a list of ``"%d %s=%s\\n"`` records. GNU tar lists an archive whose header
holds a ``comment`` of any size, and so does layerpeek: records are parsed as their bytes
arrive, a record of up to ``RECORD_LIMIT`` bytes is gathered whole, and a longer one only as
far as its key and the first ``NAME_LIMIT`` bytes of its value, the rest counted and dropped.
What is kept are the few keys layerpeek reports (``PAX_KEYS``); every other key (comments,
xattrs, atime, unknown ones) is dropped whatever its size. A name over ``NAME_LIMIT`` bytes
is cut and marked, a sparse map over ``MAP_LIMIT`` kept just past it (reading that file is
then refused), and any other kept value longer than ``RECORD_LIMIT`` is a HostileLayer.
"""

from __future__ import annotations

from layerpeek.core.errors import CorruptLayer, HostileLayer
from layerpeek.core.layers.entry import NAME_LIMIT, cut_name
from layerpeek.core.layers.tar.sparse import MAP_LIMIT

RECORD_LIMIT = 1 << 20
"""Longest record gathered whole; Go's archive/tar refuses a whole header past this size."""
_LENGTH_DIGITS = 20
"""A record length longer than this is not a number any header could hold."""
_KEY_PEEK = 256
"""Bytes of a long record's key looked at; every key layerpeek keeps is far shorter."""

PAX_KEYS = frozenset(
    {
        "path",
        "linkpath",
        "size",
        "uid",
        "gid",
        "mtime",
        "GNU.sparse.name",
        "GNU.sparse.realsize",
        "GNU.sparse.size",
        "GNU.sparse.map",
        "GNU.sparse.major",
    }
)
NAME_KEYS = frozenset({"path", "linkpath", "GNU.sparse.name"})
_SPARSE_PAIR_KEYS = frozenset({"GNU.sparse.offset", "GNU.sparse.numbytes"})
_MAP_KEYS = _SPARSE_PAIR_KEYS | {"GNU.sparse.map"}


class CutName(str):
    """A name from an extended header cut at ``NAME_LIMIT`` bytes: the mark survives until
    the entry it names is built, which is then marked ``cut``."""


def decode(raw: bytes) -> str:
    """Names are UTF-8 in practice; undecodable bytes survive as surrogate escapes."""
    return raw.decode("utf-8", "surrogateescape")


def header_name(raw: bytes) -> str:
    """A path or link name from an extended header: up to its first NUL (GNU tar's reading;
    Go refuses such a header), decoded, and cut and marked when it is longer than
    ``NAME_LIMIT`` bytes (so a 1 MiB record never becomes a 1 MiB name). ``raw`` may hold
    just the first ``NAME_LIMIT + 1`` bytes of a longer value."""
    raw = raw.partition(b"\0")[0]
    if len(raw) <= NAME_LIMIT:
        return decode(raw)
    return CutName(decode(cut_name(raw)))


class PaxParser:
    """The records of one PAX header, pushed in as its body arrives (``feed``), returned by
    ``finish``. Memory stays under ``RECORD_LIMIT`` plus the kept values whatever the size
    of the header: ``MAP_LIMIT`` for a sparse map, ``NAME_LIMIT`` per name."""

    def __init__(self, at: int) -> None:
        self._at = at
        self._records: dict[str, str] = {}
        self._fragments: list[str] = []
        self._map_chars = 0
        self._mapped = False
        self._record = bytearray()  # the current record's bytes gathered so far
        self._length = 0  # its length, once its digits are read
        self._digits = 0  # bytes of ``_record`` that are its length and the space
        self._drop = 0  # bytes of a long record still to be dropped
        self._equals = False  # a long record's '=' was seen
        self._ended = False  # a NUL where a record should start: the records are over

    def feed(self, data: bytes | memoryview) -> None:
        """Parse the next bytes of the header's body."""
        view = memoryview(data)
        if not self._record and not self._length and not self._drop and not self._ended:
            view = view[self._whole_records(bytes(view)) :]
        while view and not self._ended:
            if self._drop:
                view = self._dropping(view)
            elif not self._length:
                view = self._length_field(view)
            else:
                view = self._gather(view)

    def finish(self) -> dict[str, str]:
        """The kept records; a record cut off by the end of the header is malformed."""
        if self._record or self._length or self._drop:
            raise self._malformed()
        if self._mapped:
            # Joined once: appending to a string per record is quadratic in a long header.
            self._records["GNU.sparse.map"] = ",".join(self._fragments)
        return self._records

    def _malformed(self) -> CorruptLayer:
        return CorruptLayer(f"malformed PAX record at tar offset {self._at:,}", self._at)

    def _whole_records(self, data: bytes) -> int:
        """Parse the short records that ``data`` holds whole, in place (the usual header,
        a few records in one piece); return how many bytes they took. The rest, a record
        split across pieces or a long one, is left to the record-by-record states."""
        pos = 0
        while pos < len(data) and data[pos]:
            space = data.find(b" ", pos, pos + _LENGTH_DIGITS + 1)
            if space < 0:
                return pos
            digits = data[pos:space]
            if not digits.isdigit() or int(digits) <= space - pos + 1:
                raise self._malformed()
            length = int(digits)
            if length > RECORD_LIMIT or pos + length > len(data):
                return pos
            self._keep(data[space + 1 : pos + length])
            pos += length
        self._ended = pos < len(data)
        return pos

    def _length_field(self, view: memoryview) -> memoryview:
        """Read a record's decimal length, up to the space after it."""
        if not self._record and not view[0]:
            self._ended = True  # Go and tarfile stop at a NUL too: padding, not records
            return view
        piece = bytes(view[: _LENGTH_DIGITS + 1 - len(self._record)])
        space = piece.find(b" ")
        if space < 0:
            self._record += piece
            if len(self._record) > _LENGTH_DIGITS:
                raise self._malformed()
            return view[len(piece) :]
        self._record += piece[: space + 1]
        digits = bytes(self._record[:-1])
        if not digits.isdigit() or int(digits) <= len(self._record):
            raise self._malformed()
        self._length, self._digits = int(digits), len(self._record)
        return view[space + 1 :]

    def _gather(self, view: memoryview) -> memoryview:
        """Gather a record whole, or a long one's head (key and start of value)."""
        whole = self._length <= RECORD_LIMIT
        target = self._length if whole else self._digits + _KEY_PEEK + NAME_LIMIT + 1
        step = min(target - len(self._record), len(view))
        self._record += view[:step]
        if len(self._record) == target:
            if whole:
                record = bytes(self._record[self._digits :])
                self._reset()
                self._keep(record)
            else:
                self._start_long()
        return view[step:]

    def _reset(self) -> None:
        self._record.clear()
        self._length = self._digits = 0

    def _keep(self, record: bytes) -> None:
        """Keep one whole record (``key=value\\n``) if its key is one layerpeek reports."""
        key, equals, value = record.partition(b"=")
        if not equals or not record.endswith(b"\n"):
            raise self._malformed()
        name = decode(key)
        value = value[:-1]
        if name in _SPARSE_PAIR_KEYS:
            # PAX 0.0 repeats these for each fragment, in order: keep them as a 0.1 map.
            self._add_fragment(decode(value))
        elif name == "GNU.sparse.map":
            self._fragments, self._map_chars = [], 0
            if value:
                self._add_fragment(decode(value))
        elif name in NAME_KEYS:
            self._records[name] = header_name(value)
        elif name in PAX_KEYS:
            self._records[name] = decode(value)

    def _add_fragment(self, text: str) -> None:
        """One more piece of a sparse map, kept while the map is under ``MAP_LIMIT``: one
        over it is kept just past the limit, so that a read of the file is refused."""
        self._mapped = True
        if self._map_chars > MAP_LIMIT:
            return
        self._fragments.append(text[: MAP_LIMIT + 1])
        self._map_chars += len(self._fragments[-1]) + 1

    def _start_long(self) -> None:
        """Look at a long record's head, keep what it names, and drop the rest."""
        head = bytes(self._record[self._digits :])
        key, equals, _ = head[:_KEY_PEEK].partition(b"=")
        name = decode(key) if equals else ""
        if name in NAME_KEYS:
            self._records[name] = header_name(head[len(key) + 1 :][: NAME_LIMIT + 1])
        elif name in _MAP_KEYS:
            self._add_fragment("0" * (MAP_LIMIT + 1))  # too long to read: refused on read
        elif name in PAX_KEYS:
            raise HostileLayer(
                f"PAX {name} record of {self._length:,} bytes at tar offset {self._at:,} "
                f"exceeds the 1 MiB limit",
                self._at,
            )
        self._equals = bool(equals) or b"=" in head
        self._drop = self._length - len(self._record)
        self._reset()

    def _dropping(self, view: memoryview) -> memoryview:
        """Count off the rest of a long record; it must hold a '=' and end in a newline."""
        step = min(self._drop, len(view))
        piece = view[:step]
        if not self._equals:
            self._equals = b"=" in bytes(piece)
        self._drop -= step
        if not self._drop and (piece[-1] != 0x0A or not self._equals):
            raise self._malformed()
        return view[step:]
