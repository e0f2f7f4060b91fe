"""The push tar scanner over archives built by tarfile (GNU, PAX, ustar) and by hand."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import tarfile
from collections.abc import Iterator

import pytest

from fixtures.peak import PEAK_SOURCE
from fixtures.tarblocks import END, MTIME, padded, pax_body, pax_entry, raw_header
from layerpeek.core.errors import CorruptLayer, HostileLayer, LayerTooLarge, TruncatedLayer
from layerpeek.core.layers.entry import LAYER_LIMITS, NAME_LIMIT, TarEntry
from layerpeek.core.layers.scan import LayerReader
from layerpeek.core.layers.tar.scanner import FileData, ScanEvent, TarScanner

LONG_DIR = "usr/lib/" + "x" * 90
FORMATS = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}


def member(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    mode: int = 0o644,
    uid: int = 0,
    link: str = "",
    device: tuple[int, int] = (0, 0),
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, 0, MTIME
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    info.devmajor, info.devminor = device
    return info, data


def archive(fmt: int, members: list[tuple[tarfile.TarInfo, bytes]], **options: object) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=fmt, errors="surrogateescape", **options
    ) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buffer.getvalue()


SAMPLE = [
    member("./", tarfile.DIRTYPE, mode=0o755),
    member("./etc/", tarfile.DIRTYPE, mode=0o755),
    member("./etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"),
    member("./etc/.wh.secret.key"),
    member("./usr/bin/bash", data=b"\x7fELF" + bytes(1500), mode=0o755),
    member("./usr/bin/sh", tarfile.SYMTYPE, link="/usr/bin/bash", mode=0o777),
    member("./usr/bin/rbash", tarfile.LNKTYPE, link="./usr/bin/bash", mode=0o755),
    member("./usr/bin/sudo", data=b"setuid", mode=0o4755),
    member(f"./{LONG_DIR}/libfoo.so.1", data=b"library"),
    member("./var/cache/.wh..wh..opq"),
    member("./dev/null", tarfile.CHRTYPE, device=(1, 3)),
    member("./dev/sda", tarfile.BLKTYPE, device=(8, 0)),
    member("./run/initctl", tarfile.FIFOTYPE),
    member("./tmp/empty"),
]


def expected(path: str, kind: str, size: int = 0, mode: int = 0o644, link: str = "") -> TarEntry:
    return TarEntry(path, kind, size, mode, 0, 0, MTIME, link)  # type: ignore[arg-type]


EXPECTED = [
    expected(".", "dir", mode=0o755),
    expected("etc", "dir", mode=0o755),
    expected("etc/passwd", "file", 30),
    expected("etc/.wh.secret.key", "whiteout"),
    expected("usr/bin/bash", "file", 1504, 0o755),
    expected("usr/bin/sh", "symlink", mode=0o777, link="/usr/bin/bash"),
    expected("usr/bin/rbash", "hardlink", mode=0o755, link="usr/bin/bash"),
    expected("usr/bin/sudo", "file", 6, 0o4755),
    expected(f"{LONG_DIR}/libfoo.so.1", "file", 7),
    expected("var/cache/.wh..wh..opq", "opaque"),
    expected("dev/null", "char"),
    expected("dev/sda", "block"),
    expected("run/initctl", "fifo"),
    expected("tmp/empty", "file"),
]


def chunkings(blob: bytes, seed: int = 3) -> Iterator[list[bytes]]:
    """One piece, byte by byte, and random chunk sizes around the 512-byte block size."""
    yield [blob]
    yield [blob[i : i + 1] for i in range(len(blob))]
    rng = random.Random(seed)
    pieces, pos = [], 0
    while pos < len(blob):
        step = rng.choice([1, 100, 511, 512, 513, 1000, 4096])
        pieces.append(blob[pos : pos + step])
        pos += step
    yield pieces


def scan(pieces: list[bytes] | bytes, want: object = None) -> list[ScanEvent]:
    scanner = TarScanner(want)  # type: ignore[arg-type]
    events: list[ScanEvent] = []
    for piece in [pieces] if isinstance(pieces, bytes) else pieces:
        events += scanner.feed(piece)
    scanner.close()
    return events


def entries(blob: bytes) -> list[TarEntry]:
    return [e for e in scan(blob) if isinstance(e, TarEntry)]


def without_offsets(found: list[TarEntry]) -> list[TarEntry]:
    return [e._replace(offset=0) for e in found]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_dialect_lists_the_same_entries_whatever_the_chunking(fmt: str) -> None:
    blob = archive(FORMATS[fmt], SAMPLE)
    results = [scan(pieces) for pieces in chunkings(blob)]
    assert without_offsets(results[0]) == EXPECTED  # type: ignore[arg-type]
    assert results[1] == results[0]
    assert results[2] == results[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_offsets_point_at_each_files_data(fmt: str) -> None:
    blob = archive(FORMATS[fmt], SAMPLE)
    contents = {info.name.removeprefix("./"): data for info, data in SAMPLE}
    for entry in entries(blob):
        if entry.type == "file":
            assert blob[entry.offset : entry.offset + entry.size] == contents[entry.path]


def test_gnu_long_names_long_links_and_base256_numbers() -> None:
    name = "deep/" * 60 + "file"
    target = "target/" * 30
    blob = archive(
        tarfile.GNU_FORMAT,
        [member(name, data=b"x", uid=1 << 40), member("link", tarfile.SYMTYPE, link=target)],
    )
    found = entries(blob)
    assert (found[0].path, found[0].uid, found[0].size) == (name, 1 << 40, 1)
    assert (found[1].path, found[1].link) == ("link", target)
    assert blob[found[0].offset : found[0].offset + 1] == b"x"


def test_pax_records_override_the_header_fields() -> None:
    info, data = member("ünïcødé/" + "n" * 120, data=b"pax data", uid=1 << 30)
    info.mtime = 1_700_000_000.75  # type: ignore[assignment]
    link, _ = member("hard", tarfile.LNKTYPE, link="./ünïcødé/" + "n" * 120)
    found = entries(archive(tarfile.PAX_FORMAT, [(info, data), (link, b"")]))
    assert found[0].path == "ünïcødé/" + "n" * 120
    assert (found[0].uid, found[0].mtime, found[0].size) == (1 << 30, MTIME, 8)
    assert found[1].link == "ünïcødé/" + "n" * 120


def test_pax_size_says_how_much_data_follows() -> None:
    pax = pax_body(size="5", path="big.bin")
    blob = (
        raw_header(b"././@PaxHeader", b"x", len(pax))
        + padded(pax)
        + raw_header(b"truncated-name", b"0", 0)
        + padded(b"12345")
        + raw_header(b"next", b"0", 0)
        + END
    )
    found = entries(blob)
    assert [(e.path, e.size) for e in found] == [("big.bin", 5), ("next", 0)]
    assert blob[found[0].offset : found[0].offset + 5] == b"12345"


def test_pax_global_headers_apply_to_nothing() -> None:
    # Go returns a global header as a header of its own (dropping any 'x' read before it)
    # and containerd's apply ignores it: no entry Docker extracts takes its path, ids, size.
    glob = pax_body(uid="77", mtime="42.5", path="renamed", size="3", linkpath="elsewhere")
    local = pax_body(uid="88")
    blob = b"".join(
        [
            raw_header(b"pax_global_header", b"g", len(glob)),
            padded(glob),
            raw_header(b"a", b"0", 1),
            padded(b"A"),
            raw_header(b"././@PaxHeader", b"x", len(local)),
            padded(local),
            raw_header(b"b"),
            raw_header(b"././@PaxHeader", b"x", len(local)),
            padded(local),
            raw_header(b"pax_global_header", b"g", len(glob)),
            padded(glob),
            raw_header(b"c", b"2", at_157=b"target"),
            END,
        ]
    )
    found = entries(blob)
    assert [(e.path, e.uid, e.mtime, e.size, e.link) for e in found] == [
        ("a", 0, MTIME, 1, ""),
        ("b", 88, MTIME, 0, ""),
        ("c", 0, MTIME, 0, "target"),
    ]
    assert blob[found[0].offset : found[0].offset + 1] == b"A"


def test_tarfile_global_pax_headers_change_no_entry() -> None:
    blob = archive(tarfile.PAX_FORMAT, [member("a"), member("b")], pax_headers={"uid": "5"})
    assert [(e.path, e.uid) for e in entries(blob)] == [("a", 0), ("b", 0)]


def test_a_malformed_global_header_is_corrupt_as_in_go() -> None:
    body = b"99 path=x\n"
    with pytest.raises(CorruptLayer, match="malformed PAX record at tar offset 0"):
        scan(raw_header(b"g", b"g", len(body)) + padded(body) + raw_header(b"f") + END)


def test_ustar_prefix_field_is_joined_to_the_name() -> None:
    name = "p" * 120 + "/file"
    blob = archive(tarfile.USTAR_FORMAT, [member(name, data=b"u")])
    assert entries(blob)[0].path == name
    assert blob[345:350] == b"ppppp"


def test_gnu_headers_do_not_read_atime_bytes_as_a_prefix() -> None:
    header = raw_header(b"name", at_257=b"ustar  \0", at_345=b"01234567012\0")
    assert entries(header + END)[0].path == "name"


def test_v7_headers_without_magic() -> None:
    blob = raw_header(b"old/", b"\0") + raw_header(b"old/file", b"\0", 3) + padded(b"abc") + END
    found = entries(blob)
    assert [(e.path, e.type, e.size) for e in found] == [("old", "dir", 0), ("old/file", "file", 3)]


def test_solaris_x_is_a_pax_header_and_gnu_d_a_directory() -> None:
    pax = pax_body(path="solaris/named", uid="9")
    names = b"Yfile\0Nold\0\0"
    blob = b"".join(
        [
            raw_header(b"./PaxHeaders/f", b"X", len(pax)),
            padded(pax),
            raw_header(b"f", b"0", 2),
            padded(b"ok"),
            raw_header(b"dump/", b"D", len(names)),
            padded(names),
            raw_header(b"after", b"0", 1),
            padded(b"a"),
            END,
        ]
    )
    found = scan(blob, want=lambda e: True)
    listed = [e for e in found if isinstance(e, TarEntry)]
    assert [(e.path, e.type, e.size, e.uid) for e in listed] == [
        ("solaris/named", "file", 2, 9),
        ("dump", "dir", 0, 0),
        ("after", "file", 1, 0),
    ]
    assert [e.data for e in found if isinstance(e, FileData)] == [b"ok", b"a"]


def test_volume_labels_and_solaris_acls_are_not_entries() -> None:
    acl = b"user::rw-,group::r--,other::r--\0"
    blob = b"".join(
        [
            raw_header(b"my volume", b"V"),
            raw_header(b"f", b"A", len(acl)),
            padded(acl),
            raw_header(b"f", b"0", 2),
            padded(b"ok"),
            raw_header(b"label with data", b"V", 3),
            padded(b"abc"),
            END,
        ]
    )
    asked: list[str] = []
    found = scan(blob, want=lambda e: asked.append(e.path) or True)
    assert [(e.path, e.size) for e in found if isinstance(e, TarEntry)] == [("f", 2)]
    assert [e.data for e in found if isinstance(e, FileData)] == [b"ok"]
    assert asked == ["f"]


def test_a_nul_in_a_pax_name_ends_it() -> None:
    blob = pax_entry(b"s", kind=b"2", path="cut\0here", linkpath="to\0rest") + END
    [entry] = entries(blob)
    assert (entry.path, entry.link, entry.cut) == ("cut", "to", False)


def test_base256_numbers_in_any_field_and_in_old_gnu_sparse_maps() -> None:
    def b256(value: int) -> bytes:
        return b"\x80" + value.to_bytes(11, "big")

    sparse_map = b256(0) + b256(512) + b256(9000) + b256(4)
    gnu = {"at_257": b"ustar  \0", "at_386": sparse_map, "at_483": b256(1 << 34)}
    header = raw_header(
        b"big.img", b"S", 516, at_136=b256(MTIME), at_108=b"\x80" + bytes(6) + b"\x05", **gnu
    )
    blob = header + padded(b"s" * 512 + b"tail") + END
    found = scan(blob, want=lambda e: True)
    [entry] = [e for e in found if isinstance(e, TarEntry)]
    assert (entry.size, entry.mtime, entry.uid) == (1 << 34, MTIME, 5)
    pieces = [(e.zeros, e.data) for e in found if isinstance(e, FileData)]
    assert pieces == [(0, b"s" * 512), (9000 - 512, b"tail"), ((1 << 34) - 9004, b"")]


def rebuilt(found: list[ScanEvent], path: str) -> bytes:
    """A wanted file's content from its FileData events, holes written out."""
    return b"".join(
        bytes(e.zeros) + e.data for e in found if isinstance(e, FileData) and e.entry.path == path
    )


def test_old_gnu_sparse_files_are_listed_at_their_real_size_and_rebuilt() -> None:
    gnu = {"at_257": b"ustar  \0", "at_386": b"%011o\0" % 0 + b"%011o\0" % 512}
    simple = raw_header(b"sparse", b"S", 512, at_483=b"%011o\0" % 100_000, **gnu)
    extended = raw_header(b"more", b"S", 512, at_482=b"\1", at_483=b"%011o\0" % 9_000, **gnu)
    extension = bytearray(512)
    extension[0:24] = b"%011o\0" % 4096 + b"%011o\0" % 0
    blob = b"".join(
        [
            simple,
            padded(b"s" * 512),
            extended,
            bytes(extension),
            padded(b"m" * 512),
            raw_header(b"after", b"0", 2),
            padded(b"ok"),
            END,
        ]
    )
    found = scan(blob, want=lambda e: True)
    listed = [e for e in found if isinstance(e, TarEntry)]
    assert [(e.path, e.type, e.size) for e in listed] == [
        ("sparse", "file", 100_000),
        ("more", "file", 9_000),
        ("after", "file", 2),
    ]
    assert listed[1].offset == blob.index(b"m" * 512)
    assert [e.sparse for e in listed] == [True, True, False]
    assert rebuilt(found, "sparse") == b"s" * 512 + bytes(100_000 - 512)
    assert rebuilt(found, "more") == b"m" * 512 + bytes(9_000 - 512)
    assert rebuilt(found, "after") == b"ok"
    # Byte by byte, the same: the map, the fragments and the holes survive any split.
    pieces = [blob[i : i + 1] for i in range(len(blob))]
    assert rebuilt(scan(pieces, want=lambda e: True), "more") == rebuilt(found, "more")


def pax_sparse_v1(realsize: int, fragments: list[tuple[int, bytes]], name: str) -> bytes:
    """A PAX 1.0 sparse member: the map as decimal lines leading the data, as GNU tar does."""
    pax = pax_body(
        GNU_sparse_major="1",
        GNU_sparse_minor="0",
        GNU_sparse_name=name,
        GNU_sparse_realsize=str(realsize),
    )
    lines = [str(len(fragments))] + [f"{o}\n{len(d)}" for o, d in fragments]
    data = padded(("\n".join(lines) + "\n").encode()) + b"".join(d for _, d in fragments)
    return (
        raw_header(b"././@PaxHeader", b"x", len(pax))
        + padded(pax)
        + raw_header(b"data/GNUSparseFile.0/x", b"0", len(data))
        + padded(data)
    )


def test_pax_1_0_sparse_files_are_rebuilt_from_the_map_leading_their_data() -> None:
    blob = pax_sparse_v1(1 << 20, [(1000, b"data"), (700_000, b"more")], "data/real.img") + END
    found = scan([blob[i : i + 7] for i in range(0, len(blob), 7)], want=lambda e: True)
    assert [(e.path, e.size, e.sparse) for e in found if isinstance(e, TarEntry)] == [
        ("data/real.img", 1 << 20, True)
    ]
    expected = bytearray(1 << 20)
    expected[1000:1004], expected[700_000:700_004] = b"data", b"more"
    assert rebuilt(found, "data/real.img") == expected
    # Holes are counts, not zeros held in memory.
    assert max(len(e.data) for e in found if isinstance(e, FileData)) == 4


@pytest.mark.parametrize(
    ("records", "error"),
    [
        ({"GNU_sparse_size": "4096", "GNU_sparse_map": "100,8,50,8"}, HostileLayer),
        ({"GNU_sparse_size": "4096", "GNU_sparse_map": "0,8,4090,8"}, HostileLayer),
        ({"GNU_sparse_size": "4096", "GNU_sparse_map": "0,8,100,7"}, CorruptLayer),
        ({"GNU_sparse_size": "4096", "GNU_sparse_map": "0,x"}, CorruptLayer),
        ({"GNU_sparse_size": "4096"}, CorruptLayer),
    ],
    ids=["out-of-order", "past-the-end", "not-the-stored-size", "not-a-number", "no-map"],
)
def test_a_bad_sparse_map_fails_only_the_read_of_that_file(records, error) -> None:
    pax = pax_body(**records)
    member = (
        raw_header(b"././@PaxHeader", b"x", len(pax))
        + padded(pax)
        + raw_header(b"bad.img", b"0", 16)
        + padded(b"x" * 16)
    )
    blob = member + raw_header(b"after", b"0", 2) + padded(b"ok") + END
    listed = entries(blob)
    assert [(e.path, e.size, e.sparse) for e in listed] == [
        ("bad.img", 4096, True),
        ("after", 2, False),
    ]
    with pytest.raises(error, match=r"bad\.img|sparse"):
        scan(blob, want=lambda e: e.path == "bad.img")


def test_unknown_types_read_as_regular_files_and_modes_keep_permission_bits() -> None:
    blob = raw_header(b"odd", b"Z", 4, at_100=b"0100755\0") + padded(b"data") + END
    found = entries(blob)
    assert (found[0].type, found[0].size, found[0].mode) == ("file", 4, 0o755)


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_hostile_names_are_reported_not_repaired(fmt: str) -> None:
    names = ["../../etc/shadow", "/abs/path", "a\nb", "bad\udcffname", "./.././x"]
    blob = archive(FORMATS[fmt], [member(n, data=b"!") for n in names])
    assert [e.path for e in entries(blob)] == [
        "../../etc/shadow",
        "abs/path",
        "a\nb",
        "bad\udcffname",
        ".././x",
    ]


def test_wanted_files_stream_as_file_data_whatever_the_chunking() -> None:
    payload = bytes(range(256)) * 40
    members = [member("a", data=b"skip"), member("want", data=payload), member("empty")]
    blob = archive(tarfile.PAX_FORMAT, [*members, member("z", tarfile.DIRTYPE)])
    asked: list[str] = []

    def want(entry: TarEntry) -> bool:
        asked.append(entry.path)
        return entry.path in ("want", "empty")

    for pieces in chunkings(blob):
        asked.clear()
        events = scan(pieces, want)
        data = [e for e in events if isinstance(e, FileData)]
        assert b"".join(e.data for e in data if e.entry.path == "want") == payload
        assert [e.last for e in data if e.entry.path == "want"][-1] is True
        assert sum(e.last for e in data) == 2
        empty = next(e for e in events if isinstance(e, TarEntry) and e.path == "empty")
        assert events[events.index(empty) + 1] == FileData(empty, b"", True)
        assert asked == ["a", "want", "empty"]
        first = events.index(next(e for e in events if isinstance(e, FileData)))
        assert isinstance(events[first - 1], TarEntry) and events[first - 1].path == "want"


def test_bad_checksum_is_corrupt() -> None:
    header = bytearray(raw_header(b"file"))
    header[0] = ord("F")
    with pytest.raises(CorruptLayer, match="checksum at tar offset 0"):
        entries(bytes(header) + END)


def test_signed_checksums_are_accepted() -> None:
    name = "é".encode() * 10
    header = bytearray(raw_header(name))
    signed = sum(b - 256 if b > 127 else b for b in header[:148] + b" " * 8 + header[156:])
    header[148:156] = b"%06o\0 " % signed
    assert entries(bytes(header) + END)[0].path == "é" * 10


def test_a_pax_comment_of_a_mebibyte_and_17_bytes_is_skipped_and_the_entry_listed() -> None:
    # GNU tar lists this archive; Go refuses a PAX header over 1 MiB. A comment says nothing
    # about what a layer holds, so it is dropped as it streams past.
    info, data = member("noted", data=b"body")
    info.pax_headers = {"comment": "c" * ((1 << 20) + 17), "path": "noted/name"}
    blob = archive(tarfile.PAX_FORMAT, [(info, data), member("after", data=b"ok")])
    for pieces in [[blob], [blob[i : i + 4093] for i in range(0, len(blob), 4093)]]:
        found = scan(pieces, want=lambda e: True)
        listed = [e for e in found if isinstance(e, TarEntry)]
        assert [(e.path, e.size, e.cut) for e in listed] == [
            ("noted/name", 4, False),
            ("after", 2, False),
        ]
        assert [e.data for e in found if isinstance(e, FileData) and e.data] == [b"body", b"ok"]


@pytest.mark.parametrize(
    ("key", "value", "path", "cut"),
    [
        ("SCHILY.xattr.user.big", "x" * (3 << 20), "f", False),
        ("x" * 600, "unknown key longer than any kept one", "f", False),
        ("path", "p" * (2 << 20), "p" * NAME_LIMIT, True),
        ("path", "short\0" + "after a NUL" * 200_000, "short", False),
    ],
    ids=["xattr", "long-key", "long-path", "nul-in-long-path"],
)
def test_long_pax_records_are_read_record_by_record(key, value, path, cut) -> None:
    body = pax_body(**{key: value, "uid": "7"})
    blob = raw_header(b"x", b"x", len(body)) + padded(body) + raw_header(b"f") + END
    [entry] = entries(blob)
    assert (entry.path, entry.cut, entry.uid) == (path, cut, 7)


def test_a_long_record_of_a_number_is_hostile() -> None:
    body = pax_body(uid="7" * ((1 << 20) + 1))
    with pytest.raises(HostileLayer, match=r"^PAX uid record of 1,048,5\d\d bytes at tar offset 0"):
        scan(raw_header(b"x", b"x", len(body)) + padded(body) + raw_header(b"f") + END)


@pytest.mark.parametrize(
    ("head", "last"), [(b"comment", b"\n"), (b"comment=", b"x")], ids=["no-equals", "no-newline"]
)
def test_a_long_malformed_record_is_corrupt(head: bytes, last: bytes) -> None:
    length = (2 << 20) + 10
    prefix = b"%d %s" % (length, head)
    body = prefix + b"c" * (length - len(prefix) - 1) + last
    with pytest.raises(CorruptLayer, match="malformed PAX record"):
        scan(raw_header(b"x", b"x", len(body)) + padded(body) + raw_header(b"f") + END)


def test_a_gnu_long_name_of_any_size_is_kept_to_the_name_limit() -> None:
    blob = gnu_long(b"L", b"n" * (3 << 20)) + raw_header(b"f") + END
    [entry] = entries(blob)
    assert (entry.path, entry.cut) == ("n" * NAME_LIMIT, True)


def test_a_sparse_map_over_a_mebibyte_fails_only_the_read_of_that_file() -> None:
    # PAX 0.0 repeats one small record per fragment: what is kept of them stops at 1 MiB.
    start = 10**9
    pairs = b"".join(
        pax_body(GNU_sparse_offset=str(start + 2 * i)) + pax_body(GNU_sparse_numbytes="1")
        for i in range(90_000)
    )
    pax = pax_body(GNU_sparse_size=str(2 * start)) + pairs
    blob = (
        raw_header(b"x", b"x", len(pax))
        + padded(pax)
        + raw_header(b"many.img", b"0", 1)
        + padded(b"x")
        + END
    )
    assert [(e.path, e.size) for e in entries(blob)] == [("many.img", 2 * start)]
    with pytest.raises(HostileLayer, match=r"sparse map of 'many\.img' exceeds the 1 MiB"):
        scan(blob, want=lambda e: True)


@pytest.mark.parametrize(
    "size_field",
    [b"\xff" * 12, b"\x80" + b"\xff" * 11, b"\x80\x00\x00\x01" + bytes(8)],
)
def test_negative_or_absurd_sizes_are_hostile(size_field: bytes) -> None:
    with pytest.raises(HostileLayer, match="absurd tar entry size"):
        scan(raw_header(b"huge", at_124=size_field))


def test_negative_pax_size_is_hostile() -> None:
    pax = pax_body(size="-1")
    with pytest.raises(HostileLayer):
        scan(raw_header(b"x", b"x", len(pax)) + padded(pax) + raw_header(b"f"))


def test_an_entry_claiming_more_data_than_the_stream_has_is_truncated() -> None:
    blob = raw_header(b"a") + raw_header(b"big", at_124=b"\x80" + bytes(6) + b"\x01" + bytes(4))
    with pytest.raises(TruncatedLayer, match="inside the data of 'big'") as caught:
        scan(blob + b"some data")
    assert caught.value.offset == len(blob) + 9


def test_a_stream_cut_inside_a_wanted_file_is_truncated() -> None:
    blob = archive(tarfile.GNU_FORMAT, [member("f", data=b"x" * 5000)])[:3000]
    with pytest.raises(TruncatedLayer, match="inside the data of 'f'"):
        scan(blob, want=lambda e: True)


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (100, "inside a header"),
        (700, "inside the data of 'a'"),
        (512 * 3 - 100, "inside the data of 'a'"),  # in its padding
        (512 * 3 + 100, "inside a header"),  # inside the first zero block
    ],
)
def test_a_stream_ending_early_is_truncated(cut: int, message: str) -> None:
    blob = archive(tarfile.GNU_FORMAT, [member("a", data=b"a" * 600)])
    with pytest.raises(TruncatedLayer, match=message):
        scan(blob[:cut])


@pytest.mark.parametrize("zero_blocks", [0, 1, 2])
def test_a_stream_may_end_at_any_header_boundary(zero_blocks: int) -> None:
    # Go's reader, GNU tar and tarfile read these; tar-split's ``notenoughnils`` is one.
    blob = archive(tarfile.GNU_FORMAT, [member("a", data=b"a" * 600), member("b")])
    blob = blob[: 512 * 4] + bytes(512 * zero_blocks)
    for pieces in chunkings(blob):
        assert [(e.path, e.size) for e in scan(pieces)] == [("a", 600), ("b", 0)]


def test_an_extended_header_with_no_entry_after_it_is_dropped() -> None:
    pax = pax_body(path="never")
    blob = raw_header(b"a") + raw_header(b"x", b"x", len(pax)) + padded(pax)
    assert without_offsets(entries(blob)) == [expected("a", "file")]


def test_a_cut_extended_header_is_truncated() -> None:
    pax = pax_body(path="p" * 300)
    with pytest.raises(TruncatedLayer, match="inside an extended header"):
        scan(raw_header(b"x", b"x", len(pax)) + pax[:100])


def test_an_empty_stream_is_an_empty_layer() -> None:
    assert scan(b"") == []


def test_bytes_after_the_end_marker_are_ignored() -> None:
    blob = raw_header(b"a") + END + b"trailing garbage" + raw_header(b"b")
    scanner = TarScanner()
    assert [e.path for e in scanner.feed(blob)] == ["a"]  # type: ignore[union-attr]
    assert scanner.done
    scanner.close()


def test_a_header_after_a_lone_zero_block_is_corrupt() -> None:
    with pytest.raises(CorruptLayer, match="after a zero block"):
        scan(raw_header(b"a") + bytes(512) + raw_header(b"b"))


def test_malformed_pax_records_are_corrupt() -> None:
    for body in [b"999 path=x\n", b"nonsense", b"8 path=x\n", b"10 pathx\n\n\n"]:
        with pytest.raises(CorruptLayer, match="malformed PAX record"):
            scan(raw_header(b"x", b"x", len(body)) + padded(body) + raw_header(b"f") + END)


def test_pax_values_that_are_not_numbers_are_corrupt() -> None:
    for body in [pax_body(uid="abc"), pax_body(mtime="1.5e3")]:
        with pytest.raises(CorruptLayer, match="bad PAX"):
            scan(raw_header(b"x", b"x", len(body)) + padded(body) + raw_header(b"f") + END)


def test_garbage_in_a_numeric_field_is_corrupt() -> None:
    with pytest.raises(CorruptLayer, match="bad tar size field"):
        scan(raw_header(b"f", at_124=b"12x45678901\0"))


def test_events_before_an_error_reach_a_callers_list() -> None:
    events: list[ScanEvent] = []
    with pytest.raises(CorruptLayer):
        TarScanner().feed(raw_header(b"a") + raw_header(b"b") + b"\1" * 512, events)
    assert [e.path for e in events] == ["a", "b"]  # type: ignore[union-attr]


def test_a_sparse_file_of_a_petabyte_of_holes_costs_a_count_not_memory() -> None:
    size = 1 << 50
    pax = pax_body(GNU_sparse_size=str(size), GNU_sparse_map=f"{size - 4},4")
    blob = (
        raw_header(b"././@PaxHeader", b"x", len(pax))
        + padded(pax)
        + raw_header(b"huge.img", b"0", 4)
        + padded(b"tail")
        + END
    )
    found = [e for e in scan(blob, want=lambda e: True) if isinstance(e, FileData)]
    pieces = [(e.zeros, e.data, e.last) for e in found]
    assert pieces == [(size - 4, b"tail", False), (0, b"", True)]


def test_a_pax_1_0_map_that_never_ends_is_refused_at_one_mebibyte() -> None:
    pax = pax_body(GNU_sparse_major="1", GNU_sparse_minor="0", GNU_sparse_realsize="4096")
    data = b"999999999\n" + b"1\n" * 600_000
    blob = (
        raw_header(b"././@PaxHeader", b"x", len(pax))
        + padded(pax)
        + raw_header(b"endless.img", b"0", len(data))
        + padded(data)
        + END
    )
    assert [(e.path, e.size) for e in entries(blob)] == [("endless.img", 4096)]
    with pytest.raises(HostileLayer, match=r"sparse map of 'endless\.img' exceeds the 1 MiB"):
        scan(blob, want=lambda e: True)


# -- caps: names, entries, names per layer -----------------------------------------------------


def gnu_long(kind: bytes, name: bytes) -> bytes:
    return raw_header(b"././@LongLink", kind, len(name) + 1) + padded(name + b"\0")


def test_a_pax_path_over_the_name_limit_is_listed_cut_and_marked() -> None:
    deep, whole = "ab/" * (22 << 10), "n" * NAME_LIMIT
    blob = pax_entry(path=deep) + pax_entry(path=whole) + raw_header(b"next") + END
    assert [(e.path, e.cut) for e in entries(blob)] == [
        (deep[:NAME_LIMIT], True),
        (whole, False),  # a name of exactly the limit is kept whole
        ("next", False),
    ]


@pytest.mark.parametrize(
    ("blob", "path", "link"),
    [
        (gnu_long(b"L", b"L" * 70000) + raw_header(b"f") + END, "L" * NAME_LIMIT, ""),
        (
            gnu_long(b"K", b"K" * 70000) + raw_header(b"s", b"2") + END,
            "s",
            "K" * NAME_LIMIT,
        ),
        (
            pax_entry(b"s", kind=b"2", linkpath="k" * 70000) + END,
            "s",
            "k" * NAME_LIMIT,
        ),
    ],
    ids=["gnu-long-name", "gnu-long-link", "pax-linkpath"],
)
def test_long_gnu_names_and_link_names_are_cut_and_marked(blob: bytes, path: str, link: str):
    [entry] = entries(blob)
    assert (entry.path, entry.link, entry.cut) == (path, link, True)


def test_a_name_is_cut_before_a_utf8_character_it_would_split() -> None:
    name = "a" * (NAME_LIMIT - 1) + "\u20ac" * 10  # the euro sign takes three bytes
    [entry] = entries(pax_entry(path=name) + END)
    assert entry.path == "a" * (NAME_LIMIT - 1) and entry.cut


def test_a_huge_global_path_names_no_entry() -> None:
    glob = pax_body(path="gh/" * (330 << 10))
    blob = raw_header(b"pax_global_header", b"g", len(glob)) + padded(glob)
    blob += b"".join(raw_header(b"f%d" % i) for i in range(3)) + END
    assert [(e.path, e.cut) for e in entries(blob)] == [(f"f{i}", False) for i in range(3)]


def test_a_cut_file_is_never_offered_to_want() -> None:
    asked: list[str] = []
    blob = pax_entry(path="c" * 5000, data=b"secret") + raw_header(b"whole", b"0", 2)
    blob += padded(b"ok") + END
    events = scan(blob, want=lambda e: asked.append(e.path) or True)
    assert asked == ["whole"]
    assert [e.data for e in events if isinstance(e, FileData)] == [b"ok"]


def small(entries: int = 3, names: int = 1 << 20) -> object:
    return LAYER_LIMITS._replace(entries=entries, names=names)


def test_a_layer_with_more_entries_than_its_limit_is_refused_after_them() -> None:
    blob = b"".join(raw_header(b"e%d" % i) for i in range(5)) + END
    scanner = TarScanner(limits=small(entries=3))  # type: ignore[arg-type]
    events: list[ScanEvent] = []
    with pytest.raises(LayerTooLarge, match=r"^layer has more than 3 entries at tar offset 1,536$"):
        scanner.feed(blob, events)
    assert [e.path for e in events] == ["e0", "e1", "e2"]  # type: ignore[union-attr]


def test_extended_entries_count_against_the_limit_too() -> None:
    blob = b"".join(pax_entry(b"e", path=f"p{i}") for i in range(5)) + END
    scanner = TarScanner(limits=small(entries=2))  # type: ignore[arg-type]
    with pytest.raises(LayerTooLarge, match="more than 2 entries"):
        scanner.feed(blob)
    assert scanner.entries == 2


def test_a_layer_with_more_characters_of_names_than_its_limit_is_refused() -> None:
    blob = b"".join(raw_header(b"n" * 90 + b"%d" % i) for i in range(20)) + END
    scanner = TarScanner(limits=small(entries=100, names=1000))  # type: ignore[arg-type]
    with pytest.raises(LayerTooLarge, match="more than 0 MiB of names"):
        scanner.feed(blob)
    assert scanner.entries == 10 and scanner.names == 910


def test_the_layer_reader_says_how_many_entries_were_read() -> None:
    reader = LayerReader()
    reader._scanner = TarScanner(limits=small(entries=4))  # type: ignore[arg-type]
    reader.feed(b"".join(raw_header(b"e%d" % i) for i in range(9)) + END)
    found = reader.step()
    with pytest.raises(LayerTooLarge) as caught:
        reader.step()
    assert len(found) == 4
    assert str(caught.value) == (
        "layer has more than 4 entries at tar offset 2,048 after 5,632 bytes (4 entries read)"
    )
    assert caught.value.entries == 4


def test_the_layer_limits_pass_every_real_layer_we_know() -> None:
    # A 500k-file node_modules layer, names ~120 characters: well inside, with 4x to spare.
    assert LAYER_LIMITS.refusal(500_000, 500_000 * 120) is None
    assert LAYER_LIMITS.refusal(4 * 500_000 + 1, 0) is not None


_STREAM_A_HUGE_COMMENT = (
    PEAK_SOURCE
    + """
import sys
from layerpeek.core.layers.tar.scanner import TarScanner
sys.path.insert(0, "tests")
from fixtures.tarblocks import END, raw_header

size = 256 << 20  # one comment record of 256 MiB, streamed 1 MiB at a time
head = b"%d comment=" % size
scanner = TarScanner()
before = peak_kib()
scanner.feed(raw_header(b"x", b"x", size) + head)
chunk, left = b"c" * (1 << 20), size - len(head) - 1
while left:
    scanner.feed(chunk[: min(left, len(chunk))])
    left -= min(left, len(chunk))
found = scanner.feed(b"\\n" + bytes(-size % 512) + raw_header(b"f") + END)
scanner.close()
after = peak_kib()
print([e.path for e in found], (after - before) // 1024)
"""
)


def test_a_pax_record_of_256_mebibytes_is_skipped_in_bounded_memory() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _STREAM_A_HUGE_COMMENT], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    paths, grown_mb = run.stdout.split()
    assert paths == "['f']"
    assert int(grown_mb) < 16
