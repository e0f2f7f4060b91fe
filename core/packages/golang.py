"""Go binaries: the module build information the Go linker embeds (what ``go version -m``
prints), found without reading the binary.

An ELF executable's header says where its section headers are, and they where the
``.go.buildinfo`` section is (without section headers, the first writable, not executable
``PT_LOAD`` segment starts with it, as Go's own reader assumes). Its 32-byte header begins
with the magic ``\\xff Go buildinf:``, then the pointer size and a flags byte. Since Go 1.18
(flag bit 1) the version and the module information follow the header inline, each a
uvarint length and its bytes; before it, the header holds two pointers to Go string headers,
addresses the segments translate into file offsets. The module information is framed by 16
sentinel bytes at each end, and its lines say ``path``, ``mod`` (the main module), ``dep``
(a dependency), ``=>`` (the replacement of the line before) and ``build`` settings
(``GOARCH=amd64``).

Reads: the ELF header (64 bytes), the section headers and their names (a few KiB), the
section (up to ``WINDOW`` bytes), and only for the older format or a long module list, the
program headers and the few ranges the pointers or lengths name. A file that is not ELF
costs 64 bytes, an ELF file that is not Go its section headers. Every length and offset read
from the binary is checked against ``MAX_INFO`` before anything is read for it."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from layerpeek.core.errors import PackageDataError
from layerpeek.core.packages.model import Found, Partly, clip

BIN_DIRS = frozenset(
    {"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin", "go/bin", "ko-app"}
)
MAGIC = b"\xff Go buildinf:"
WINDOW = 64 << 10
"""Bytes of the data segment's start searched for the magic (what Go's own reader reads)."""
MAX_INFO = 4 << 20
"""Bytes of version and module information read at most from one binary."""
MAX_SECTIONS = 1024
MAX_MODULES = 10_000
"""Modules one binary's build information may list: real programs name hundreds; 4 MiB of
hostile lines could name half a million, each a package to make."""
MAX_NAMES = 64 << 10
"""Bytes of section names (``.shstrtab``) read at most; a Go binary's are a few hundred."""
MAX_SEGMENTS = 64

_PT_LOAD, _PF_X, _PF_W = 1, 1, 2
_ALIGN = 16
_SENTINEL = 16
_NO_VERSION = frozenset({"", "(devel)"})
"""Versions of a replacement by a local directory: the dependency keeps its own."""
_SECTION = b".go.buildinfo"

ReadAt = Callable[[int, int], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Segment:
    vaddr: int
    offset: int
    size: int
    flags: int


@dataclass(frozen=True, slots=True)
class Elf:
    """The fields of an ELF header that locate its program and section headers."""

    little: bool
    wide: bool
    phoff: int
    phentsize: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int
    shstrndx: int

    @property
    def end(self) -> str:
        return "<" if self.little else ">"


def is_candidate(path: str, mode: int, size: int) -> bool:
    """An executable regular file in one of the usual binary directories."""
    return path.rpartition("/")[0] in BIN_DIRS and bool(mode & 0o111) and size > 64


def parse_elf(head: bytes) -> Elf | None:
    """The header of an ELF file from its first 64 bytes; None when it is not ELF."""
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    wide, little = head[4] == 2, head[5] == 1
    end = "<" if little else ">"
    if wide:
        phoff, shoff = struct.unpack_from(end + "QQ", head, 32)
        at = 54
    else:
        phoff, shoff = struct.unpack_from(end + "II", head, 28)
        at = 42
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(end + "HHHHH", head, at)
    return Elf(little, wide, phoff, phentsize, phnum, shoff, shentsize, shnum, shstrndx)


async def _segments(read_at: ReadAt, elf: Elf) -> list[Segment]:
    """The loaded segments, from the program headers."""
    need = 56 if elf.wide else 32
    if elf.phnum > MAX_SEGMENTS or elf.phentsize < need:
        raise PackageDataError(f"an ELF file with {elf.phnum} program headers")
    table = await read_at(elf.phoff, elf.phnum * elf.phentsize)
    segments = []
    for i in range(len(table) // elf.phentsize):
        at = i * elf.phentsize
        if elf.wide:
            kind, flags, offset, vaddr, _, size = struct.unpack_from(elf.end + "IIQQQQ", table, at)
        else:
            kind, offset, vaddr, _, size, _, flags = struct.unpack_from(
                elf.end + "IIIIIII", table, at
            )
        if kind == _PT_LOAD:
            segments.append(Segment(vaddr, offset, size, flags))
    return segments


async def _section(read_at: ReadAt, elf: Elf) -> tuple[int, int] | None:
    """(offset, size) of the ``.go.buildinfo`` section, None when the binary has no section
    headers or no such section."""
    need = 64 if elf.wide else 40
    if not elf.shnum or elf.shnum > MAX_SECTIONS or elf.shentsize < need:
        return None
    if elf.shstrndx >= elf.shnum:
        raise PackageDataError("an ELF file whose section names are not among its sections")
    table = await read_at(elf.shoff, elf.shnum * elf.shentsize)
    if len(table) < elf.shnum * elf.shentsize:
        raise PackageDataError("an ELF file whose section headers run past its end")
    layout = elf.end + ("IIQQQQ" if elf.wide else "IIIIII")
    headers = [struct.unpack_from(layout, table, i * elf.shentsize) for i in range(elf.shnum)]
    names_at, names_size = headers[elf.shstrndx][4], headers[elf.shstrndx][5]
    names = await read_at(names_at, min(names_size, MAX_NAMES))
    for name, _, _, _, offset, size in headers:
        if names[name : name + len(_SECTION) + 1] == _SECTION + b"\0":
            return offset, size
    return None


async def read_buildinfo(read_at: ReadAt, size: int) -> tuple[str, str] | None:
    """The Go version and module information of an executable, None when it is not a Go
    ELF binary: from its ``.go.buildinfo`` section, or without section headers, from the
    start of its first writable, not executable, loaded segment (where the linker puts it)."""
    elf = parse_elf(await read_at(0, 64))
    if elf is None:
        return None
    segments: list[Segment] | None = None
    found = await _section(read_at, elf)
    if found is None and not elf.shnum:
        segments = await _segments(read_at, elf)
        data = next((s for s in segments if s.flags & (_PF_X | _PF_W) == _PF_W), None)
        found = (data.offset, data.size) if data else None
    if found is None:
        return None
    start, length = found
    window = await read_at(start, min(WINDOW, length))
    at = _find_magic(window)
    if at < 0:
        return None
    header = window[at : at + 32]
    if len(header) < 32:
        raise PackageDataError("the build information header is cut short")
    pointer, flags = header[14], header[15]
    if flags & 2:
        return await _inline(read_at, start + at + 32, window[at + 32 :])
    if pointer not in (4, 8):
        raise PackageDataError(f"a build information pointer size of {pointer}")
    segments = segments if segments is not None else await _segments(read_at, elf)
    return await _pointed(read_at, segments, header, pointer, big=bool(flags & 1))


def _find_magic(window: bytes) -> int:
    at = window.find(MAGIC)
    while at >= 0 and at % _ALIGN:
        at = window.find(MAGIC, at + 1)
    return at


async def _inline(read_at: ReadAt, start: int, have: bytes) -> tuple[str, str]:
    """Go 1.18 and later: two uvarint-prefixed strings after the header."""
    strings: list[bytes] = []
    offset = start
    for _ in range(2):
        if len(have) < 10:
            have = await read_at(offset, 10)
        length, used = _uvarint(have)
        if length > MAX_INFO:
            raise PackageDataError(f"a build information string of {length} bytes")
        offset += used
        have = have[used:]
        if len(have) < length:
            have = await read_at(offset, length + 10)
        if len(have) < length:
            raise PackageDataError("a build information string runs past the file")
        strings.append(have[:length])
        offset += length
        have = have[length:]
    return strings[0].decode("utf-8", "replace"), _unframe(strings[1])


async def _pointed(
    read_at: ReadAt, segments: list[Segment], header: bytes, pointer: int, big: bool
) -> tuple[str, str]:
    """Before Go 1.18: the header points at two string headers (address, length)."""
    end = ">" if big else "<"
    word = end + ("Q" if pointer == 8 else "I")
    values = []
    for slot in (16, 16 + pointer):
        string_header = await _at_address(
            read_at, segments, struct.unpack_from(word, header, slot)[0]
        )
        raw = await string_header(2 * pointer)
        address, length = struct.unpack_from(end + ("QQ" if pointer == 8 else "II"), raw)
        if length > MAX_INFO:
            raise PackageDataError(f"a build information string of {length} bytes")
        values.append(await (await _at_address(read_at, segments, address))(length))
    return values[0].decode("utf-8", "replace"), _unframe(values[1])


async def _at_address(
    read_at: ReadAt, segments: list[Segment], address: int
) -> Callable[[int], Awaitable[bytes]]:
    """A reader of ``n`` bytes at a virtual address, through the segment that maps it."""
    for segment in segments:
        if segment.vaddr <= address < segment.vaddr + segment.size:
            offset = segment.offset + address - segment.vaddr

            async def read(n: int, offset: int = offset) -> bytes:
                data = await read_at(offset, n)
                if len(data) < n:
                    raise PackageDataError("build information runs past the file")
                return data

            return read
    raise PackageDataError(f"build information at {address:#x}, which no segment maps")


def inline_strings(data: bytes) -> tuple[str, str] | None:
    """The version and module information that follow a Go 1.18+ header, None while
    ``data`` does not hold them whole yet."""
    strings: list[bytes] = []
    for _ in range(2):
        try:
            length, used = _uvarint(data)
        except PackageDataError:
            if len(data) < 10:
                return None
            raise
        if length > MAX_INFO:
            raise PackageDataError(f"a build information string of {length} bytes")
        if len(data) < used + length:
            return None
        strings.append(data[used : used + length])
        data = data[used + length :]
    return strings[0].decode("utf-8", "replace"), _unframe(strings[1])


class StreamScan:
    """Build information found in a binary's bytes as they stream past, for a layer read in
    one pass: the magic at a 16-byte aligned offset, then the inline strings; the rest of the
    file is skipped. ``pointed`` is set for a binary of the older format, which needs the
    ranges its pointers name (``read_buildinfo``)."""

    def __init__(self) -> None:
        self.offset = 0
        self.elf: bool | None = None
        self.found: tuple[str, str] | None = None
        self.pointed = False
        self._carry = b""
        self._info: bytearray | None = None

    @property
    def done(self) -> bool:
        return self.elf is False or self.found is not None or self.pointed

    def feed(self, chunk: bytes, zeros: int = 0) -> None:
        if self.done:
            return
        if zeros:
            self.offset += zeros
            self._carry = b""
        if self.elf is None:
            self._carry += chunk
            if len(self._carry) < 4 and self.offset == 0:
                return
            self.elf = self._carry.startswith(b"\x7fELF")
            chunk, self._carry = self._carry, b""
        if self._info is not None:
            self._take(chunk)
        else:
            self._search(chunk)
        self.offset += len(chunk)

    def _search(self, chunk: bytes) -> None:
        data = self._carry + chunk
        base = self.offset - len(self._carry)
        at = data.find(MAGIC)
        while at >= 0 and (base + at) % _ALIGN:
            at = data.find(MAGIC, at + 1)
        if at < 0:
            self._carry = data[-(len(MAGIC) - 1) :]
            return
        self._carry = b""
        self._info = bytearray()
        self._take(data[at:])

    def _take(self, chunk: bytes) -> None:
        assert self._info is not None
        self._info += chunk[: MAX_INFO + 64 - len(self._info)]
        if len(self._info) < 32:
            return
        if not self._info[15] & 2:
            self.pointed = True
            return
        self.found = inline_strings(bytes(self._info[32:]))
        if self.found is None and len(self._info) >= MAX_INFO + 64:
            raise PackageDataError("build information longer than its limit")


def _uvarint(data: bytes) -> tuple[int, int]:
    value = shift = 0
    for i, byte in enumerate(data[:10]):
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    raise PackageDataError("a build information length that does not end")


def _unframe(info: bytes) -> str:
    """The module information without its sentinels (Go frames it when it is present)."""
    if len(info) >= 2 * _SENTINEL + 1 and info[-_SENTINEL - 1] == ord("\n"):
        info = info[_SENTINEL:-_SENTINEL]
    return info.decode("utf-8", "replace")


def parse_modules(info: str) -> list[Found]:
    """The main module and each dependency (its replacement's version where the replacement
    is a module, not a local directory), with the binary's ``GOARCH``; past ``MAX_MODULES``,
    ``Partly`` with those read (the ``GOARCH`` line, which follows them, then unknown)."""
    modules: list[list[str]] = []
    arch = ""
    for line in info.splitlines():
        words = line.split("\t")
        if words[0] in ("mod", "dep") and len(words) >= 3:
            if len(modules) == MAX_MODULES:
                found = [_module(path, version, arch) for path, version in modules if path]
                raise Partly(found, f"lists more than {MAX_MODULES:,} modules; the rest not read")
            modules.append([words[1], words[2]])
        elif words[0] == "=>" and len(words) >= 3 and modules and words[2] not in _NO_VERSION:
            modules[-1][1] = words[2]
        elif words[0] == "build" and len(words) >= 2 and words[1].startswith("GOARCH="):
            arch = words[1].removeprefix("GOARCH=")
    return [_module(path, version, arch) for path, version in modules if path]


def _module(path: str, version: str, arch: str) -> Found:
    namespace = path.rpartition("/")[0]
    return Found(clip(path), clip(version), clip(arch), namespace=clip(namespace))
