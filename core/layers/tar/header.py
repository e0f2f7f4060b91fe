"""Tar header fields: one 512-byte block split into the entry it describes.

What a header says, read the way Go's ``archive/tar`` reads it (GNU tar where Go has none):
the typeflags and which of them carry data, the name joined to the ustar prefix, numbers in
octal text or base-256 (``numbers``), the checksum, and PAX records overriding fields. The
scanner (``scanner.TarScanner``) decides which blocks are headers; everything here is a pure
function of the blocks it is given.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from layerpeek.core.errors import CorruptLayer, HostileLayer
from layerpeek.core.layers.entry import EntryType, TarEntry, display_path, whiteout_type
from layerpeek.core.layers.tar.numbers import tar_number
from layerpeek.core.layers.tar.pax import decode

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
SIZE_LIMIT = 1 << 63

_TYPES: dict[bytes, EntryType] = {
    b"0": "file",
    b"\0": "file",
    b"7": "file",
    b"S": "file",
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "char",
    b"4": "block",
    b"5": "dir",
    b"6": "fifo",
    b"D": "dir",  # GNU incremental dump: a directory whose data lists its names
}
PLAIN_TYPES = frozenset(_TYPES) - {b"S"}
"""Typeflags whose header alone describes the entry (sparse files add a map to theirs)."""
_HEADER_ONLY = frozenset({"hardlink", "symlink", "char", "block", "dir", "fifo"})
_NO_DATA = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
"""Typeflags whose size field is not followed by data (Go's ``isHeaderOnlyType``)."""
PAX_TYPES = frozenset({b"x", b"g", b"X"})
"""PAX extended headers: per entry, global, and Solaris's older name for ``x``."""
_LONG_TYPES = frozenset({b"L", b"K"})
META_TYPES = PAX_TYPES | _LONG_TYPES
NOT_ENTRIES = frozenset({b"V", b"A"})
"""A GNU volume label and a Solaris ACL: headers that describe no file, skipped with their
data (containerd's apply refuses both; GNU tar extracts neither as a file)."""
_USTAR_MAGIC = b"ustar\x00"
_LOW_BYTES = bytes(range(128))
FIELDS = struct.Struct("100s8s8s8s12s12s8sc100s6s82x155s12x")
"""A header split in one call: name, mode, uid, gid, size, mtime, checksum, typeflag,
linkname, magic and the ustar prefix (version, owner names and device numbers skipped)."""


@dataclass(slots=True)
class Header:
    """One entry's fields while extended headers are applied, before it becomes a TarEntry.

    ``stored`` is the count of data bytes after the header; ``size`` the file's size, which
    differs from it for sparse files.
    """

    path: str
    link: str
    stored: int
    size: int
    uid: int
    gid: int
    mtime: int
    sparse: bool
    sparse_map: bytes | str | None = None
    """A sparse file's map as its headers hold it: old GNU's 24-byte records, or PAX 0.x's
    ``offset,length,…``; parsed only when the file is read, so a bad map fails that read, not
    the listing."""
    map_in_data: bool = False
    """PAX 1.0: the map leads the stored data."""


def plain_entry(fields: tuple[bytes, ...], data_offset: int) -> tuple[TarEntry, int]:
    """The entry of a header that needs nothing but itself (``TarScanner._headers``), and
    the data bytes stored after it, from ``data_offset`` on."""
    path, link, mode, uid, gid, stored, mtime = read_fields(fields, data_offset - BLOCK)
    return build_entry(fields[7], path, link, stored, stored, mode, uid, gid, mtime, data_offset)


def read_fields(fields: tuple[bytes, ...], at: int) -> tuple[str, str, int, int, int, int, int]:
    """Path, link name, mode, uid, gid, size and mtime as the header block holds them."""
    mode, uid, gid, size, mtime = _numbers(fields, at)
    link = decode(_c_string(fields[8])) if fields[8][0] else ""
    path = decode(_ustar_name(fields[0], fields[9], fields[10]))
    return path, link, mode, uid, gid, size, mtime


def build_entry(
    kind: bytes,
    path: str,
    link: str,
    stored: int,
    size: int,
    mode: int,
    uid: int,
    gid: int,
    mtime: int,
    data_offset: int,
    sparse: bool = False,
    cut: bool = False,
) -> tuple[TarEntry, int]:
    """The entry as reported, from its header's fields once any extended header has amended
    them, and the data bytes stored after its header. ``cut``: its path or link name is one
    cut at ``NAME_LIMIT`` bytes."""
    at = data_offset - BLOCK
    entry_type = _entry_type(kind, path)
    if entry_type in _HEADER_ONLY:
        size = 0  # As Go and tarfile: these never carry data...
        if kind in _NO_DATA or kind == b"\0":
            stored = 0  # ...and none follows them, but a GNU dumpdir's names do.
    entry = TarEntry(
        display_path(path),
        whiteout_type(path, entry_type),
        checked_size(size, at),
        mode & 0o7777,
        uid,
        gid,
        mtime,
        display_path(link) if entry_type == "hardlink" else link,
        data_offset,
        sparse,
        cut,
    )
    return entry, checked_size(stored, at)


def apply_pax(header: Header, pax: dict[str, str], at: int) -> None:
    """Let PAX records override the header fields (an empty value means "no override")."""
    header.path = pax.get("GNU.sparse.name") or pax.get("path") or header.path
    header.link = pax.get("linkpath") or header.link
    header.stored = _pax_int(pax, "size", at, header.stored)
    header.size = _pax_int(pax, "GNU.sparse.size", at, header.stored)
    header.size = _pax_int(pax, "GNU.sparse.realsize", at, header.size)
    header.sparse = header.sparse or any(key.startswith("GNU.sparse.") for key in pax)
    if "GNU.sparse.map" in pax:
        header.sparse_map = pax["GNU.sparse.map"]
    header.map_in_data = pax.get("GNU.sparse.major") == "1"
    header.uid = _pax_int(pax, "uid", at, header.uid)
    header.gid = _pax_int(pax, "gid", at, header.gid)
    header.mtime = _pax_mtime(pax, at, header.mtime)


def _entry_type(kind: bytes, path: str) -> EntryType:
    """Map a typeflag; POSIX says unknown types read as regular files."""
    if kind == b"\0" and path.endswith("/"):
        return "dir"  # v7 archives mark directories by a trailing slash only.
    return _TYPES.get(kind, "file")


def _c_string(field: bytes) -> bytes:
    """A NUL-terminated field's text (all of it when no NUL ends it)."""
    return field.partition(b"\0")[0]


def _ustar_name(name: bytes, magic: bytes, prefix: bytes) -> bytes:
    """The name field, joined to the ustar prefix field when the magic says it is one.

    GNU headers reuse the prefix bytes for atime/ctime, so only POSIX ustar (and PAX, which
    writes ustar headers) get the prefix, as in Go's reader.
    """
    name = _c_string(name)
    if magic == _USTAR_MAGIC and prefix[0]:
        return _c_string(prefix) + b"/" + name
    return name


def _numbers(fields: tuple[bytes, ...], at: int) -> tuple[int, int, int, int, int]:
    """Mode, uid, gid, size and mtime (``FIELDS`` 1-5), with one fast path for the usual
    octal text."""
    _, mode, uid, gid, size, mtime = fields[:6]
    try:
        return (
            int(mode.replace(b"\0", b" "), 8),
            int(uid.replace(b"\0", b" "), 8),
            int(gid.replace(b"\0", b" "), 8),
            int(size.replace(b"\0", b" "), 8),
            int(mtime.replace(b"\0", b" "), 8),
        )
    except ValueError:
        return (
            tar_number(mode, "mode", at),
            tar_number(uid, "uid", at),
            tar_number(gid, "gid", at),
            tar_number(size, "size", at),
            tar_number(mtime, "mtime", at),
        )


def checked_size(size: int, at: int) -> int:
    if size < 0 or size > SIZE_LIMIT:
        raise HostileLayer(f"absurd tar entry size {size:,} at tar offset {at:,}", at)
    return size


def padding(size: int) -> int:
    return -size % BLOCK


def verify_checksum(block: bytes | memoryview, field: bytes, at: int) -> None:
    """Check the header checksum (``field``, bytes 148-155 of ``block``), accepting the
    unsigned and the signed byte sums as tar does. ``block`` may be a view into the stream.

    ``sum()`` over 512 bytes is slow in Python; ``adler32``'s low half is 1 + the byte sum
    mod 65521, exact for runs of up to 256 bytes, so two C calls give the sum.
    """
    stored = tar_number(field, "checksum", at)
    unsigned = (
        ((zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2)
        - sum(field)
        + 8 * 32
    )
    if stored == unsigned:
        return
    high = len(bytes(block).translate(None, _LOW_BYTES)) - len(field.translate(None, _LOW_BYTES))
    if stored != unsigned - 256 * high:
        raise CorruptLayer(f"bad tar header checksum at tar offset {at:,}", at)


def _pax_int(pax: dict[str, str], key: str, at: int, default: int) -> int:
    value = pax.get(key)
    if not value:
        return default
    try:
        return int(value, 10)
    except ValueError:
        raise CorruptLayer(f"bad PAX {key} {value!r} at tar offset {at:,}", at) from None


def _pax_mtime(pax: dict[str, str], at: int, default: int) -> int:
    """PAX times may carry a fraction ("1700000000.123456789"); whole seconds are kept."""
    value = pax.get("mtime")
    if not value:
        return default
    seconds, _, fraction = value.partition(".")
    if not fraction.isdigit() and fraction:
        raise CorruptLayer(f"bad PAX mtime {value!r} at tar offset {at:,}", at)
    return _pax_int({"mtime": seconds or "0"}, "mtime", at, default)
