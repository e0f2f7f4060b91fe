"""Every tar dialect, read as other implementations read it, from layers in a real registry.

Archives come from GNU tar (each ``--format``, ``--sparse``, ``--label``, incremental ``-g``),
bsdtar (libarchive), Python's tarfile, and by hand for the edge cases real layers carry.
Each is pushed as one image of three layers (gzip, zstd, plain tar) and layerpeek's listing
of every layer (path, type, size of files, link target) is compared with what ``tar -tvf``
and ``bsdtar -tvf`` list, and every regular file's bytes (``read_file``, layer-scoped) with
what they extract.

What a layer contains is what Docker extracts: Go's ``archive/tar`` read by containerd's
apply, GNU tar's reading where Go has none (RESEARCH section 2). Where the two tools
disagree with that, a case says which tool it is compared with and why (``Case.listers``).
The archives are built and pushed once per module.
"""

from __future__ import annotations

import io
import os
import random
import re
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import zstandard

from fixtures.images import (
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Pusher,
    compress,
    sha256_digest,
)
from fixtures.tarblocks import END, padded, pax_body, pax_entry, raw_header
from fixtures.tools import require_tool
from layerpeek.core.errors import CorruptLayer, LayerError
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.layers.scan import FileData, scan_layer
from layerpeek.core.service import Layerpeek

pytestmark = pytest.mark.tools

Listed = tuple[str, str, int | None, str]
"""(path, type, size of a regular file or None, link target) as every lister shows it."""

LAYERS = ("gzip", "zstd", "none")
MEDIA_TYPES = {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}
TOOL_ENV = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}
_TYPES = {"-": "file", "d": "dir", "l": "symlink", "h": "hardlink", "p": "fifo"}
_LINE = re.compile(r"^(?P<mode>\S{10})\s+(?:\d+\s+)?\S+(?:\s+\S+)?\s+(?P<size>\d+)\s+")


@dataclass
class Case:
    """One archive and how to check it.

    ``listers``: the tools whose listing and extraction layerpeek must match (the others
    differ from Go+containerd there; the case's comment says how). ``tar_errors``: a lister
    that reports an error after its listing (a damaged archive) is still compared.
    ``layers`` overrides the blobs pushed (a zstd stream with skippable frames).
    """

    build: Callable[[Path], bytes]
    listers: tuple[str, ...] = ("gnu", "bsd")
    tar_errors: bool = False
    blobs: Callable[[bytes], dict[str, bytes]] | None = None
    damaged: str = ""
    """The error a damaged archive ends with (its message before the engine's "after …");
    the service's listing of such a layer belongs to its own tests."""


# -- source trees and tool-built archives ------------------------------------------------------

SHORT = ["a.txt", "big.bin", "empty", "hard", "link", "sub", "sub/inner.txt"]
"""What every format can hold (v7: names under 100 bytes, no fifos)."""
DEEP_DIR = "p" * 60 + "/" + "q" * 60
DEEP = DEEP_DIR + "/" + "f" * 90
USTAR = [*SHORT, "fifo", "ünïcødé.txt", "p" * 60, DEEP_DIR, DEEP]
"""What ustar can hold: names split into a 155-byte prefix and a 100-byte name."""
LONG = "L" * 150 + "/" + "M" * 150
FULL = [*USTAR, "L" * 150, LONG, "longlink"]
"""GNU and PAX hold any name and link target."""


def source_tree(root: Path) -> Path:
    """The files every tool archives, in ``root/src``."""
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"hello\n")
    (src / "big.bin").write_bytes(random.Random(15).randbytes(70_000))
    (src / "empty").write_bytes(b"")
    (src / "sub" / "inner.txt").write_bytes(b"inside\n")
    (src / "ünïcødé.txt").write_bytes(b"unicode name\n")
    (src / "link").symlink_to("a.txt")
    os.link(src / "a.txt", src / "hard")
    os.mkfifo(src / "fifo")
    (src / DEEP_DIR).mkdir(parents=True)
    (src / DEEP).write_bytes(b"deep\n")
    (src / LONG).parent.mkdir()
    (src / LONG).write_bytes(b"long name\n")
    (src / "longlink").symlink_to("T" * 150)
    hole = src / "sparse.img"
    with hole.open("wb") as out:
        out.truncate(1 << 20)
        out.seek(500_000)
        out.write(b"island")
    return src


def gnu_tar(*options: str, names: list[str] = USTAR) -> Callable[[Path], bytes]:
    def build(root: Path) -> bytes:
        out = root / f"gnu-{abs(hash(options))}.tar"
        subprocess.run(
            ["tar", *options, "--no-recursion", "-cf", str(out), "-C", str(root / "src"), *names],
            check=True,
            env=TOOL_ENV,
        )
        return out.read_bytes()

    return build


def gnu_incremental(root: Path) -> bytes:
    """``tar -g``: GNU ``D`` dumpdir entries, a directory whose data lists its names."""
    out, snapshot = root / "incremental.tar", root / "snapshot"
    subprocess.run(
        [
            "tar",
            "--format=gnu",
            "-g",
            str(snapshot),
            "-cf",
            str(out),
            "-C",
            str(root / "src"),
            "sub",
        ],
        check=True,
        env=TOOL_ENV,
    )
    return out.read_bytes()


def bsdtar(fmt: str, names: list[str] = USTAR) -> Callable[[Path], bytes]:
    def build(root: Path) -> bytes:
        out = root / f"bsd-{fmt}.tar"
        subprocess.run(
            ["bsdtar", f"--format={fmt}", "-n", "-cf", str(out), "-C", str(root / "src"), *names],
            check=True,
            env=TOOL_ENV,
        )
        return out.read_bytes()

    return build


def python_tarfile(fmt: int, names: list[str]) -> Callable[[Path], bytes]:
    def build(root: Path) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
            for name in names:
                tar.add(root / "src" / name, arcname=name, recursive=False)
        return buffer.getvalue()

    return build


# -- hand-made edge cases ----------------------------------------------------------------------


def members_tar(count: int = 5) -> tuple[bytes, int]:
    """A GNU tar of ``count`` small files, and where its end-of-archive marker starts."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(count):
            info = tarfile.TarInfo(f"dir/file-{i:02}")
            data = b"content %d\n" % i * (i + 1)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        end = buffer.tell()
    return buffer.getvalue(), end


def no_end_marker(_: Path) -> bytes:
    blob, end = members_tar()
    return blob[:end]


def one_zero_block(_: Path) -> bytes:
    blob, end = members_tar()
    return blob[:end] + bytes(512)


def damaged_last_header(_: Path) -> bytes:
    """39 entries, the 39th header's name damaged: the checksum no longer matches."""
    blob, end = members_tar(39)
    last = blob.rindex(b"dir/file-38")
    return blob[:last] + b"X" + blob[last + 1 : end] + bytes(1024)


def duplicate_paths(_: Path) -> bytes:
    first = raw_header(b"d/a", b"0", 5) + padded(b"first")
    second = raw_header(b"d/a", b"0", 11) + padded(b"second copy")
    return raw_header(b"d/", b"5") + first + second + END


def global_headers(_: Path) -> bytes:
    glob = pax_body(path="renamed", uid="77", size="3", linkpath="elsewhere")
    g = raw_header(b"pax_global_header", b"g", len(glob)) + padded(glob)
    return (
        g
        + raw_header(b"a", b"0", 1)
        + padded(b"A")
        + g
        + raw_header(b"b", b"0", 2)
        + padded(b"BB")
        + END
    )


def nul_in_pax_path(_: Path) -> bytes:
    return pax_entry(b"x", data=b"nul", path="cut\0here") + END


def base256_sparse_map(_: Path) -> bytes:
    """An old GNU sparse file whose map and real size are base-256 numbers."""

    def b256(value: int) -> bytes:
        return b"\x80" + value.to_bytes(11, "big")

    fields = {
        "at_257": b"ustar  \0",
        # GNU tar ends a map with an empty fragment at the file's size (without one, it
        # extracts the file only up to its last data; Go and bsdtar to its size).
        "at_386": b256(0) + b256(512) + b256(9000) + b256(4) + b256(20_000) + b256(0),
        "at_483": b256(20_000),
    }
    return raw_header(b"big.img", b"S", 516, **fields) + padded(b"s" * 512 + b"tail") + END


def huge_pax_comment(_: Path) -> bytes:
    """A ``comment`` record of 1 MiB + 17 bytes (Go refuses the header; GNU tar lists it)."""
    body = b" comment=" + b"c" * ((1 << 20) + 17 - len(b" comment=") - len(b"1048593") - 1) + b"\n"
    record = b"1048593" + body
    assert len(record) == (1 << 20) + 17
    header = raw_header(b"././@PaxHeader", b"x", len(record)) + padded(record)
    return header + raw_header(b"noted.txt", b"0", 4) + padded(b"body") + END


def solaris_and_gnu_types(_: Path) -> bytes:
    """Solaris ``X`` (a PAX header) and ``A`` (an ACL), GNU ``D`` (a dumpdir) and ``V``."""
    pax = pax_body(path="solaris/named")
    names = b"Yfile\0\0"
    acl = b"1000000\0" + b"3\0user::rw-,group::r--,other::r--\0"
    return b"".join(
        [
            raw_header(b"layer label", b"V"),
            raw_header(b"./PaxHeaders/f", b"X", len(pax)),
            padded(pax),
            raw_header(b"f", b"0", 2),
            padded(b"ok"),
            raw_header(b"dump/", b"D", len(names)),
            padded(names),
            raw_header(b"g", b"A", len(acl)),
            padded(acl),
            raw_header(b"g", b"0", 1),
            padded(b"G"),
            END,
        ]
    )


def skippable_frames(tar: bytes) -> dict[str, bytes]:
    """The zstd layer starts with a skippable frame and has one between its frames."""

    def skippable(payload: bytes, nibble: int) -> bytes:
        return (
            (0x184D2A50 + nibble).to_bytes(4, "little")
            + len(payload).to_bytes(4, "little")
            + payload
        )

    frames = zstandard.ZstdCompressor()
    zstd = b"".join(
        [
            skippable(b"metadata before the first frame", 0),
            frames.compress(tar[:1024]),
            skippable(b"between", 0xF),
            frames.compress(tar[1024:]),
        ]
    )
    return {"gzip": compress(tar, "gzip"), "zstd": zstd, "none": tar}


CASES: dict[str, Case] = {
    "gnu-v7": Case(gnu_tar("--format=v7", names=SHORT)),
    "gnu-oldgnu": Case(gnu_tar("--format=oldgnu", names=FULL)),
    "gnu-gnu": Case(gnu_tar("--format=gnu", names=FULL)),
    "gnu-ustar": Case(gnu_tar("--format=ustar")),
    "gnu-posix": Case(gnu_tar("--format=posix", names=FULL)),
    "gnu-sparse-oldgnu": Case(
        gnu_tar("--format=oldgnu", "--sparse", names=["sparse.img", "a.txt"])
    ),
    "gnu-sparse-gnu": Case(gnu_tar("--format=gnu", "--sparse", names=["sparse.img", "a.txt"])),
    "gnu-sparse-posix-1.0": Case(
        gnu_tar("--format=posix", "--sparse", "--sparse-version=1.0", names=["sparse.img"])
    ),
    # GNU tar lists the volume label as a 'V' entry; bsdtar, Go+containerd extract no file.
    "gnu-label": Case(
        gnu_tar("--format=gnu", "--label=layer label", names=SHORT), listers=("bsd",)
    ),
    "gnu-incremental": Case(gnu_incremental),
    "bsd-pax": Case(bsdtar("pax", FULL)),
    "bsd-ustar": Case(bsdtar("ustar")),
    "bsd-gnutar": Case(bsdtar("gnutar", [n for n in FULL if n != "fifo"])),
    "bsd-v7": Case(bsdtar("v7tar", SHORT)),
    "tarfile-gnu": Case(python_tarfile(tarfile.GNU_FORMAT, FULL)),
    "tarfile-pax": Case(python_tarfile(tarfile.PAX_FORMAT, FULL)),
    "tarfile-ustar": Case(python_tarfile(tarfile.USTAR_FORMAT, USTAR)),
    "no-end-marker": Case(no_end_marker),
    "one-zero-block": Case(one_zero_block),
    "damaged-last-header": Case(
        damaged_last_header,
        tar_errors=True,
        damaged="bad tar header checksum at tar offset 38,912",
    ),
    # Both entries are listed; which copy a read returns is the merged view's rule (the
    # last, as extraction keeps), tested with the service.
    "duplicate-paths": Case(duplicate_paths),
    # GNU tar applies a global header's path, size and uid to the entries after it (and so
    # misreads their data); Go returns it as a header of its own and containerd ignores
    # it, as bsdtar does.
    "global-headers": Case(global_headers, listers=("bsd",)),
    # GNU tar and bsdtar cut the path at the NUL; Go refuses the header (ErrHeader), so
    # Docker could not apply this layer at all: the GNU reading is the one there is.
    "nul-in-pax-path": Case(nul_in_pax_path),
    "base256-sparse-map": Case(base256_sparse_map),
    # bsdtar refuses a PAX header over 1 MiB ("Special header too large"), as Go does;
    # GNU tar lists the entry. A comment changes nothing Docker extracts: GNU's reading.
    "huge-pax-comment": Case(huge_pax_comment, listers=("gnu",)),
    # GNU tar lists the 'V' label and the 'A' ACL as entries (the ACL as an unknown type);
    # bsdtar, like layerpeek, lists neither (it applies the ACL to the next file, and
    # exits 1 on this ACL's text). containerd's apply refuses both types outright.
    "solaris-and-gnu-types": Case(solaris_and_gnu_types, listers=("bsd",), tar_errors=True),
    "skippable-zstd-frames": Case(lambda _: members_tar()[0], blobs=skippable_frames),
}

WHOLE = [name for name, case in CASES.items() if not case.damaged]


# -- what the tools list and extract ------------------------------------------------------------


def tool_listing(tool: str, archive: Path, errors: bool) -> list[Listed]:
    """``tar -tvf`` or ``bsdtar -tvf`` parsed into ``Listed`` tuples (labels dropped)."""
    command = ["tar", "--quoting-style=literal", "-tvf"] if tool == "gnu" else ["bsdtar", "-tvf"]
    run = subprocess.run([*command, str(archive)], capture_output=True, env=TOOL_ENV, check=False)
    assert errors or run.returncode == 0, run.stderr
    listed = []
    for raw in run.stdout.decode("utf-8", "surrogateescape").splitlines():
        line = _LINE.match(raw)
        assert line is not None, raw
        mode = line["mode"][0]
        if mode == "V":
            continue
        # Name starts after the date and time: GNU "2023-11-14 22:13 ", bsdtar "Nov 14  2023 ".
        rest = raw[line.end() :]
        name = re.split(r"^\S+\s+\S+\s+\S+ " if tool == "bsd" else r"^\S+ \S+ ", rest, maxsplit=1)[
            1
        ]
        kind = _TYPES[mode]
        link = ""
        if kind == "symlink":
            name, _, link = name.partition(" -> ")
        elif kind == "hardlink":
            name, _, link = name.partition(" link to ")
        size = int(line["size"]) if kind == "file" else None
        listed.append((display(name), kind, size, display(link) if kind == "hardlink" else link))
    return listed


def display(name: str) -> str:
    """A name as layerpeek lists it: no leading ``./`` or ``/``, no trailing ``/``."""
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    return name.rstrip("/") or "."


def extract(tool: str, archive: Path, into: Path) -> Path:
    into.mkdir()
    command = (
        ["tar", "--no-same-owner", "--no-same-permissions", "-xf"]
        if tool == "gnu"
        else ["bsdtar", "-xf"]
    )
    subprocess.run(
        [*command, str(archive), "-C", str(into)], capture_output=True, env=TOOL_ENV, check=False
    )
    return into


# -- fixtures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """An archive on disk, its image's reference and what each lister made of it."""

    tar: Path
    ref: str
    blobs: dict[str, str]
    """Each layer's blob URL in the registry."""
    listings: dict[str, list[Listed]]
    extracted: dict[str, Path]


@pytest.fixture(scope="module")
def dialects(tmp_path_factory: pytest.TempPathFactory, plain_registry) -> dict[str, Built]:
    """Every case built, listed and extracted by the tools, and pushed, once."""
    require_tool("bsdtar")
    root = tmp_path_factory.mktemp("dialects")
    source_tree(root)
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    built = {}
    with Pusher(plain_registry.url) as pusher:
        for name, case in CASES.items():
            tar = case.build(root)
            path = root / f"{name}.tar"
            path.write_bytes(tar)
            blobs = (
                case.blobs(tar) if case.blobs else {kind: compress(tar, kind) for kind in LAYERS}
            )
            layers = [(blobs[kind], MEDIA_TYPES[kind]) for kind in LAYERS]
            pusher.image("dialects", [name], layers, config)
            built[name] = Built(
                path,
                f"{plain_registry.host}/dialects:{name}",
                {
                    kind: f"{plain_registry.url}/v2/dialects/blobs/{sha256_digest(blobs[kind])}"
                    for kind in LAYERS
                },
                {tool: tool_listing(tool, path, case.tar_errors) for tool in case.listers},
                {tool: extract(tool, path, root / f"{name}-{tool}") for tool in case.listers},
            )
    return built


async def layer_listing(
    peek: Layerpeek, ref: str, layer: int
) -> tuple[list[Listed], LayerError | None]:
    """layerpeek's listing of one layer, and the error that ended it, if any."""
    image = await peek.resolve(ref)
    found: list[Listed] = []
    try:
        async for e in peek.entries(image, layer):
            found.append((e.path, e.type, e.size if e.type == "file" else None, e.link))
    except LayerError as error:
        return found, error
    return found, None


# -- the comparisons ----------------------------------------------------------------------------


async def engine_scan(url: str) -> tuple[list[Listed], dict[str, bytes], LayerError | None]:
    """A layer blob from the registry through the range engine (``scan_layer``): its
    listing, every file's bytes (the last copy of a path) and the error that ended it."""

    async def chunks():
        async with httpx.AsyncClient() as client, client.stream("GET", url) as response:
            async for chunk in response.aiter_bytes(16 << 10):
                yield chunk

    listed: list[Listed] = []
    files: dict[str, bytes] = {}
    try:
        async for event in scan_layer(chunks(), want=lambda entry: True):
            if isinstance(event, TarEntry):
                size = event.size if event.type == "file" else None
                listed.append((event.path, event.type, size, event.link))
                if event.type == "file":
                    files[event.path] = b""
            elif isinstance(event, FileData):
                files[event.entry.path] += bytes(event.zeros) + event.data
    except LayerError as error:
        return listed, files, error
    return listed, files, None


@pytest.mark.parametrize("name", WHOLE)
async def test_every_layer_lists_what_the_tools_list(peek, dialects, name):
    built, case = dialects[name], CASES[name]
    for layer, kind in enumerate(LAYERS):
        found, error = await layer_listing(peek, built.ref, layer)
        assert error is None, (kind, error)
        assert found, kind
        for tool in case.listers:
            assert found == built.listings[tool], (kind, tool)


@pytest.mark.parametrize("name", WHOLE)
async def test_every_file_reads_as_the_tools_extract_it(peek, dialects, name):
    built, case = dialects[name], CASES[name]
    image = await peek.resolve(built.ref)
    for layer, kind in enumerate(LAYERS):
        found, _ = await layer_listing(peek, built.ref, layer)
        files = [path for path, type_, _, _ in found if type_ == "file"]
        assert files, kind
        for path in files:
            data = b"".join([chunk async for chunk in peek.read_file(image, path, layer)])
            for tool in case.listers:
                assert data == (built.extracted[tool] / path).read_bytes(), (kind, tool, path)


@pytest.mark.parametrize("name", CASES)
async def test_the_range_engine_reads_each_layer_as_the_tools_do(dialects, name):
    # Every case, and the one the service's listing stops at: a damaged last header. Go
    # stops there (ErrHeader), GNU tar skips to the next header and finds none; either
    # way what came before is listed and extracted, and so is it here.
    built, case = dialects[name], CASES[name]
    for kind in LAYERS:
        found, files, error = await engine_scan(built.blobs[kind])
        if case.damaged:
            assert isinstance(error, CorruptLayer), kind
            assert str(error).startswith(f"{case.damaged} after "), kind
        else:
            assert error is None, (kind, error)
        for tool in case.listers:
            assert found == built.listings[tool], (kind, tool)
            for path, data in files.items():
                assert data == (built.extracted[tool] / path).read_bytes(), (kind, tool, path)
