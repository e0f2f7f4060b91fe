"""RPM distributions: the SQLite rpmdb (``rpmdb.sqlite``: Fedora 33 and later, RHEL/UBI 9).

Its ``Packages`` table holds one header blob per package (``hnum``, ``blob``). A blob is an
rpm header without its magic: two big-endian 32-bit counts, the index entries ``il`` and the
data bytes ``dl``; ``il`` entries of 16 bytes (tag, type, offset into the data, count); then
the data. The tags read here are NAME (1000), VERSION (1001), RELEASE (1002), EPOCH (1003,
an INT32) and ARCH (1022), strings (type 6) ending in a NUL.

The database is opened from the bytes read (``sqlite3``'s deserialize), read-only, never as
a file of the image. Older databases, BerkeleyDB ``Packages`` (RHEL ≤ 8, CentOS) and NDB
``Packages.db`` (SUSE), are named as not read."""

from __future__ import annotations

import sqlite3
import struct

from layerpeek.core.errors import PackageDataError
from layerpeek.core.packages.model import Found, clip

SQLITE = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
NOT_READ = {
    "var/lib/rpm/Packages": "a BerkeleyDB rpmdb (RHEL 8 and older), which is not read",
    "usr/lib/sysimage/rpm/Packages": "a BerkeleyDB rpmdb, which is not read",
    "var/lib/rpm/Packages.db": "an NDB rpmdb (SUSE), which is not read",
    "usr/lib/sysimage/rpm/Packages.db": "an NDB rpmdb (SUSE), which is not read",
}

MAX_ENTRIES = 100_000
"""Index entries one header may have (rpm's own limit is 0x0000ffff)."""
MAX_DATA = 256 << 20
"""Data bytes one header may have (rpm's own limit)."""

_NAME, _VERSION, _RELEASE, _EPOCH, _ARCH = 1000, 1001, 1002, 1003, 1022
_STRING, _INT32 = 6, 4
_WANTED = frozenset({_NAME, _VERSION, _RELEASE, _EPOCH, _ARCH})


def parse_sqlite(data: bytes, limit: int) -> tuple[list[Found], list[str]]:
    """The packages of an rpmdb.sqlite's bytes, at most ``limit``; and a line for each
    header that could not be read (the others still are)."""
    connection = sqlite3.connect(":memory:")
    try:
        try:
            connection.deserialize(_rollback_mode(data))
            connection.execute("PRAGMA query_only = ON")
            rows = connection.execute("SELECT hnum, blob FROM Packages ORDER BY hnum")
            return _headers(rows, limit)
        except sqlite3.DatabaseError as exc:
            raise PackageDataError(f"not a readable SQLite rpmdb ({exc})") from None
    finally:
        connection.close()


def _rollback_mode(data: bytes) -> bytes:
    """The database marked as a rollback-journal one: rpm leaves it in WAL mode (header
    bytes 18 and 19 are 2), which a database in memory cannot open. Its ``-wal`` file is
    not read (``wal_problem`` names one that holds pages)."""
    if len(data) >= 20 and data[18:20] == b"\2\2":
        return data[:18] + b"\1\1" + data[20:]
    return data


def wal_problem(path: str, size: int) -> str | None:
    """What a non-empty write-ahead log beside an rpmdb means for its inventory."""
    if size and path.endswith("rpmdb.sqlite-wal"):
        return f"a write-ahead log of {size} bytes is not read: recent changes may be missing"
    return None


def _headers(rows: sqlite3.Cursor, limit: int) -> tuple[list[Found], list[str]]:
    found: list[Found] = []
    damaged: list[str] = []
    for hnum, blob in rows:
        if len(found) >= limit:
            break
        try:
            found.append(parse_header(bytes(blob) if isinstance(blob, bytes | memoryview) else b""))
        except PackageDataError as exc:
            damaged.append(f"header {hnum}: {exc}")
    return found, damaged


def parse_header(blob: bytes) -> Found:
    """One package from its header blob."""
    if len(blob) < 8:
        raise PackageDataError("shorter than a header's counts")
    il, dl = struct.unpack_from(">II", blob)
    if il > MAX_ENTRIES or dl > MAX_DATA:
        raise PackageDataError(f"{il} entries, {dl} data bytes: past the header limits")
    start = 8 + 16 * il
    if start + dl > len(blob):
        raise PackageDataError(f"says {start + dl} bytes, holds {len(blob)}")
    store = memoryview(blob)[start : start + dl]
    values: dict[int, str] = {}
    for tag, kind, offset, count in struct.iter_unpack(">iIiI", blob[8:start]):
        if tag in _WANTED and tag not in values:
            values[tag] = _value(store, kind, offset, count)
    if not values.get(_NAME):
        raise PackageDataError("no NAME tag")
    version = values.get(_VERSION, "")
    if values.get(_RELEASE):
        version = f"{version}-{values[_RELEASE]}"
    epoch = values.get(_EPOCH, "")
    qualifiers = {"epoch": epoch} if epoch and epoch != "0" else {}
    return Found(values[_NAME], version, values.get(_ARCH, ""), qualifiers=qualifiers)


def _value(store: memoryview, kind: int, offset: int, count: int) -> str:
    """A string (up to its NUL) or a 32-bit integer of the data store, checked against it."""
    if offset < 0 or offset >= len(store):
        raise PackageDataError(f"an entry points at {offset}, past the data")
    if kind == _INT32:
        if count < 1 or offset + 4 > len(store):
            raise PackageDataError("an INT32 entry runs past the data")
        return str(struct.unpack_from(">I", store, offset)[0])
    if kind != _STRING:
        raise PackageDataError(f"an entry of type {kind} where a string was expected")
    end = bytes(store[offset : offset + 4096]).find(b"\0")
    if end < 0:
        raise PackageDataError("a string without its NUL")
    return clip(bytes(store[offset : offset + end]).decode("utf-8", "replace"))
