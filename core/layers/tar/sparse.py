"""Sparse files as GNU tar writes them (``tar --sparse``): a map of data fragments, holes between.

What follows a sparse file's header is not its content but its non-hole fragments, one after
another; where each goes is a map of (offset, length) pairs, kept in one of four places:

- old GNU (typeflag ``S``): four pairs in the header, more in extension blocks after it;
- PAX 0.0: repeated ``GNU.sparse.offset`` / ``GNU.sparse.numbytes`` records;
- PAX 0.1: one ``GNU.sparse.map`` record, ``offset,length,offset,length…``;
- PAX 1.0: at the start of the data, as decimal lines (a count, then the pairs), padded to
  a 512-byte boundary.

``SparseFile`` turns the stored bytes back into the file: a fragment's bytes as they arrive,
and each hole as a count of zero bytes (``FileData.zeros``), never as zeros in memory, so a
file of 1 TB of holes costs nothing until a reader asks for its bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from layerpeek.core.errors import CorruptLayer, HostileLayer
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.layers.tar.numbers import tar_number

BLOCK = 512
MAP_LIMIT = 1 << 20
"""Largest PAX 1.0 map accepted at the start of the data, as the PAX header limit."""

Fragment = tuple[int, int]
"""(offset in the file, length) of one run of stored data."""


def gnu_fragments(fields: bytes, at: int) -> list[Fragment]:
    """The (offset, length) pairs of an old GNU header or extension block: 24 bytes each, two
    12-byte numbers (octal, or base-256 as any tar number); an empty pair ends the list."""
    fragments = []
    for start in range(0, len(fields) - 23, 24):
        offset_field, length_field = fields[start : start + 12], fields[start + 12 : start + 24]
        if not offset_field.strip(b"\0 ") and not length_field.strip(b"\0 "):
            break
        fragments.append(
            (
                tar_number(offset_field, "sparse map number", at),
                tar_number(length_field, "sparse map number", at),
            )
        )
    return fragments


def pax_fragments(value: str, at: int) -> list[Fragment]:
    """The pairs of a ``GNU.sparse.map`` value (PAX 0.1; PAX 0.0 records are joined into the
    same form as they are read)."""
    numbers = [_decimal(part, at) for part in value.split(",") if part.strip()]
    if len(numbers) % 2:
        raise CorruptLayer(f"sparse map with an odd count of numbers at tar offset {at:,}", at)
    return list(zip(numbers[::2], numbers[1::2], strict=True))


class SparseFile:
    """The content of one sparse file, rebuilt from its stored bytes as they arrive.

    ``fragments`` is the map when the headers held it, None for PAX 1.0 (the map leads the
    data). ``feed`` takes the next stored bytes and returns (zeros, data) pieces in file
    order; ``finish`` the trailing hole once every stored byte is in.
    """

    def __init__(
        self, entry: TarEntry, fragments: list[Fragment] | None, stored: int, at: int
    ) -> None:
        self.entry = entry
        self._at = at
        self._prefix = bytearray() if fragments is None else None
        self._stored = stored  # PAX 1.0: the map block(s) included
        self._newlines = 0  # in ``_prefix``: the map is complete after 2 * count + 1
        self._fragments: Iterator[Fragment] = iter(())
        self._position = 0  # bytes of the file produced so far
        self._left = 0  # data bytes still due in the current fragment
        if fragments is not None:
            self._start(fragments, stored)

    def feed(self, data: bytes | memoryview) -> list[tuple[int, bytes]]:
        """The (zeros, data) pieces that ``data`` (the next stored bytes) completes."""
        pieces: list[tuple[int, bytes]] = []
        view = memoryview(data)
        if self._prefix is not None:
            view = self._take_prefix(view)
        while view:
            zeros = self._next_fragment() if not self._left else 0
            step = min(self._left, len(view))
            pieces.append((zeros, view[:step].tobytes()))
            self._left -= step
            self._position += step
            view = view[step:]
        return pieces

    def finish(self) -> int:
        """The zeros after the last fragment, up to the file's size."""
        if self._prefix is not None or self._left:
            raise CorruptLayer(f"sparse file {self.entry.path!r} ends inside its data", self._at)
        # Fragments left now have no data (GNU tar ends a map with one at the file's end).
        zeros = self.entry.size - self._position
        self._position = self.entry.size
        return zeros

    def _start(self, fragments: list[Fragment], stored: int) -> None:
        """Check the map against the file: in order, not overlapping, inside it, and adding
        up to the bytes stored."""
        end = 0
        for offset, length in fragments:
            if offset < end or offset + length > self.entry.size:
                raise HostileLayer(
                    f"sparse map of {self.entry.path!r} at tar offset {self._at:,} has fragments "
                    f"out of order or past the file's {self.entry.size:,} bytes",
                    self._at,
                )
            end = offset + length
        if sum(length for _, length in fragments) != stored:
            raise CorruptLayer(
                f"sparse map of {self.entry.path!r} at tar offset {self._at:,} does not add up "
                f"to the {stored:,} bytes stored",
                self._at,
            )
        self._fragments = iter(fragments)

    def _next_fragment(self) -> int:
        """Move to the next fragment with data; the zeros of the hole before it."""
        for offset, length in self._fragments:
            if length:
                zeros = offset - self._position
                self._position, self._left = offset, length
                return zeros
        raise CorruptLayer(f"sparse file {self.entry.path!r} stores more than its map", self._at)

    def _take_prefix(self, view: memoryview) -> memoryview:
        """Collect the PAX 1.0 map (whole 512-byte blocks) before the first fragment."""
        assert self._prefix is not None
        while view and self._prefix is not None:
            take = min(BLOCK - len(self._prefix) % BLOCK, len(view))
            block = view[:take]
            self._prefix += block
            self._newlines += block.tobytes().count(b"\n")
            view = view[take:]
            if len(self._prefix) > MAP_LIMIT:
                raise HostileLayer(
                    f"sparse map of {self.entry.path!r} exceeds the 1 MiB limit", self._at
                )
            if len(self._prefix) % BLOCK == 0 and self._newlines:
                self._parse_prefix()
        return view

    def _parse_prefix(self) -> None:
        """Parse the map once its lines are all in: a count, then that many pairs."""
        assert self._prefix is not None
        first = bytes(self._prefix[: self._prefix.index(b"\n")])
        count = _decimal(first.decode("ascii", "replace"), self._at)
        if self._newlines < 2 * count + 1:
            return
        lines = bytes(self._prefix).split(b"\n", 2 * count + 1)[1 : 2 * count + 1]
        numbers = ",".join(line.decode("ascii", "replace") for line in lines)
        fragments = pax_fragments(numbers, self._at)
        stored = self._stored - len(self._prefix)
        self._prefix = None
        self._start(fragments, stored)


ZERO_CHUNK = bytes(1 << 20)


def zero_chunks(count: int) -> Iterator[bytes]:
    """``count`` zero bytes as chunks of at most 1 MiB (one shared buffer, sliced)."""
    while count > 0:
        chunk = ZERO_CHUNK if count >= len(ZERO_CHUNK) else ZERO_CHUNK[:count]
        count -= len(chunk)
        yield chunk


def _decimal(text: str, at: int) -> int:
    text = text.strip()
    if not text.isdigit():
        raise CorruptLayer(f"bad sparse map number {text[:20]!r} at tar offset {at:,}", at)
    return int(text)
