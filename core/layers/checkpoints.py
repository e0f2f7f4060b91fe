"""Random access into gzip layers: zran-style checkpoints, built while a layer is scanned.

Deflate can only be resumed at a block boundary, with the 32 KiB of output before it as the
dictionary and the 0-7 bits of the boundary's first byte that belong to the next block
(zlib's examples/zran.c). Python's ``zlib`` module hides block boundaries (``Z_BLOCK``) and
``inflatePrime``, so both sides call a zlib's C API through ``ctypes``: ``CheckpointInflater``
decompresses a gzip stream for the scanner and records a ``Checkpoint`` every ``SPACING``
bytes of output; ``Resume`` resumes at one. No second decompression: the scan's inflater is
the builder.

The same calls exist in zlib-ng's native API (``zng_*``), which inflates the same deflate
stream, block boundaries included, ~1.5 times faster. ``zlib_native`` loads it from the
``zlib-ng`` package when it can, else the system zlib. Checkpoints are plain deflate
positions: either library resumes at one that the other recorded.
"""

from __future__ import annotations

import ctypes
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from zlib_ng import zlib_ng

from layerpeek.core.errors import CorruptLayer, TruncatedLayer
from layerpeek.core.layers import zlib_native
from layerpeek.core.layers.buffers import Buffer, OutputPool
from layerpeek.core.layers.compression import Piece

SPACING = 4 << 20
"""Uncompressed bytes between checkpoints: a ``cat`` reads at most about this much extra."""
WINDOW = 32 << 10
RESUME_OUTPUT = 256 << 10
"""Output pieces of a ``Resume`` (a ``cat`` from a checkpoint), which go out to the user."""
OUTPUT = 4 << 20
"""Largest output piece, and the size of a scan's output buffers (``buffers.OutputPool``): a
bomb never sits in memory whole. Larger than
``compression.MAX_OUTPUT`` because each ``inflate`` call gives the interpreter lock up and
must win it back to go on: with a busy Python thread beside it (the tar scanner, the event
loop), 256 KiB pieces inflated ~7x slower than alone, 4 MiB pieces ~1.3x."""

_Z_OK, _Z_STREAM_END, _Z_BUF_ERROR = 0, 1, -5
_Z_NO_FLUSH, _Z_BLOCK = 0, 5
_GZIP_WBITS = 31  # a gzip header and trailer, 32 KiB window
_RAW_WBITS = -15


_ZLIB = zlib_native.load()


@dataclass(frozen=True)
class Checkpoint:
    """Where inflating can restart: ``compressed`` is the first whole byte after the block
    boundary, ``bits`` how many high bits of the byte before it belong to the next block,
    ``uncompressed`` the output offset there, ``window`` the 32 KiB of output before it."""

    compressed: int
    uncompressed: int
    bits: int
    window: bytes

    @property
    def fetch_from(self) -> int:
        """The first blob byte a resume needs (the partial byte, when there is one)."""
        return self.compressed - (1 if self.bits else 0)


class _Inflate:
    """One zlib inflate stream driven through ctypes; ``end()`` frees it.

    ``run`` inflates into a buffer, after what it already holds; ``lend`` hands out what was
    written since the last ``lend``: a view of the buffer when the stream has an
    ``OutputPool`` (the buffer is reused once its pieces are given back), else a copy (the
    buffer is reused at once).
    """

    def __init__(self, wbits: int, output: int, pool: OutputPool | None = None) -> None:
        """``output``: the buffer size without a pool, the largest piece ``lend`` gives."""
        self.stream = _ZLIB.stream()
        self._pool = pool
        self._buffer: Buffer | None = Buffer(output) if pool is None else None
        self._input = b""
        self._ended = False
        if _ZLIB.init(ctypes.byref(self.stream), wbits):
            raise MemoryError("zlib inflateInit2 failed")

    def give(self, data: bytes) -> None:
        """Queue input; the bytes object is kept alive while zlib points into it."""
        self._input = data
        self.stream.next_in = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p)
        self.stream.avail_in = len(data)

    @property
    def full(self) -> bool:
        """True when the buffer has no room left: ``lend`` before the next ``run``."""
        return self._buffer is not None and not self._buffer.room

    def run(self, flush: int, limit: int | None = None) -> tuple[int, memoryview]:
        """One ``inflate`` call writing at most ``limit`` bytes: its return code and the bytes
        it wrote (a view, valid until they are lent)."""
        buffer = self._writable()
        limit = buffer.room if limit is None else min(limit, buffer.room)
        self.stream.next_out = buffer.address + buffer.filled
        self.stream.avail_out = limit
        code = _ZLIB.inflate(ctypes.byref(self.stream), flush)
        produced = limit - self.stream.avail_out
        if code not in (_Z_OK, _Z_STREAM_END, _Z_BUF_ERROR):
            message = (self.stream.msg or b"invalid deflate data").decode(errors="replace")
            raise CorruptLayer(f"corrupt gzip data ({message})", self.stream.total_in)
        buffer.filled += produced
        return code, buffer.view[buffer.filled - produced : buffer.filled]

    def lend(self) -> Piece:
        """What ``run`` wrote since the last ``lend`` (empty when nothing was)."""
        if self._pool is None:
            return self.copy()
        return b"" if self._buffer is None else self._pool.lend(self._buffer)

    def copy(self) -> bytes:
        """``lend`` for a stream without a pool, whose pieces are always copies: its one
        buffer is written again from the start."""
        buffer = self._buffer
        assert buffer is not None and self._pool is None, "a pool's stream lends its pieces"
        piece = bytes(buffer.view[: buffer.filled])
        buffer.filled = 0
        return piece

    def _writable(self) -> Buffer:
        """The buffer to write into: the current one while it has room, else a new one
        from the pool (everything in the full one has been lent)."""
        buffer = self._buffer
        if buffer is not None and buffer.room:
            return buffer
        full_and_unlent = buffer is not None and buffer.lent_to < buffer.filled
        assert self._pool is not None and not full_and_unlent, "lend() before run() when full"
        if buffer is not None:
            self._pool.retire(buffer)
        self._buffer = self._pool.take()
        return self._buffer

    def end(self) -> None:
        """Free zlib's state; safe to call twice (also runs when a failed stream is dropped)."""
        if not self._ended:
            self._ended = True
            _ZLIB.end(ctypes.byref(self.stream))
            if self._pool is not None and self._buffer is not None:
                self._pool.retire(self._buffer)

    __del__ = end


class CheckpointInflater:
    """A ``compression.Decompressor`` for gzip that also records checkpoints.

    Checkpoints are taken in the blob's first gzip member only: a layer of many members
    (eStargz) is better served by its TOC. Later members are inflated with stdlib zlib.
    """

    def __init__(self, spacing: int = SPACING, pool: OutputPool | None = None) -> None:
        """``pool``: lend output pieces from its buffers instead of copying them out
        (``buffers``); its buffers are ``OUTPUT`` bytes."""
        self.consumed = 0
        self.checkpoints: list[Checkpoint] = []
        self._spacing = spacing
        self._inflate: _Inflate | None = _Inflate(_GZIP_WBITS, OUTPUT, pool)
        self._tail = bytearray()  # the last WINDOW bytes of output
        self._out = 0
        self._rest = _RestMembers()

    def feed(self, data: bytes) -> Iterator[Piece]:
        """Inflate ``data``, yielding output pieces of at most ``OUTPUT`` bytes: what one
        buffer took, until it was full or the input ran out."""
        if self._inflate is None:
            yield from self._rest.feed(data, self)
            return
        inflate = self._inflate
        inflate.give(data)
        before = inflate.stream.total_in
        while True:
            if inflate.full and (piece := inflate.lend()):
                yield piece
            try:
                code, out = inflate.run(*self._mode())
            except CorruptLayer:
                if piece := inflate.lend():
                    yield piece  # the output before the damage, then the damage
                raise
            self.consumed += inflate.stream.total_in - before
            before = inflate.stream.total_in
            if out:
                self._record_output(out)
            if code == _Z_STREAM_END:
                if piece := inflate.lend():
                    yield piece
                rest = data[len(data) - inflate.stream.avail_in :]
                inflate.end()
                self._inflate = None
                yield from self._rest.feed(rest, self)
                return
            self._maybe_checkpoint(inflate.stream)
            needs_input = not inflate.stream.avail_in and inflate.stream.avail_out
            if needs_input or (not out and code == _Z_BUF_ERROR):
                if piece := inflate.lend():
                    yield piece
                return

    def finish(self) -> None:
        if self._inflate is not None:
            self._inflate.end()
            self._inflate = None
            raise TruncatedLayer("gzip stream ends early", self.consumed)
        self._rest.finish(self)

    @property
    def _since_checkpoint(self) -> int:
        """Output bytes since the last checkpoint (since the start before the first)."""
        return self._out - (self.checkpoints[-1].uncompressed if self.checkpoints else 0)

    def _mode(self) -> tuple[int, int]:
        """How to call ``inflate`` next: stopping at every block boundary (``Z_BLOCK``) costs
        a Python round trip per block (thousands per layer), so until the next checkpoint is
        due it inflates freely, up to exactly where it is due, and only then block by block
        until a boundary; the checkpoints are the same as with ``Z_BLOCK`` throughout."""
        due = self._spacing - self._since_checkpoint
        return (_Z_NO_FLUSH, min(OUTPUT, due)) if due > 0 else (_Z_BLOCK, OUTPUT)

    def _record_output(self, out: memoryview) -> None:
        """Count the output; keep its last ``WINDOW`` bytes once a checkpoint is that close.

        Only the output just before a checkpoint becomes its window, so the copying (up to
        64 KiB per call, on the thread a listing waits for) is left out until then. Output
        is kept from at least ``WINDOW`` bytes before the point where the next checkpoint is
        due, and a checkpoint can only come at or after that point.
        """
        self._out += len(out)
        if self._since_checkpoint > self._spacing - WINDOW:
            self._tail += out[-WINDOW:]
            del self._tail[:-WINDOW]

    def _maybe_checkpoint(self, stream: ctypes.Structure) -> None:
        """At a block boundary (bit 128 of data_type) that is not the last block's end (64)."""
        boundary = stream.data_type & 128 and not stream.data_type & 64
        if boundary and self._since_checkpoint >= self._spacing and len(self._tail) == WINDOW:
            self.checkpoints.append(
                Checkpoint(stream.total_in, self._out, stream.data_type & 7, bytes(self._tail))
            )
            self._tail.clear()


class _RestMembers:
    """Members after the first, inflated with stdlib zlib (zeros between them skipped)."""

    def __init__(self) -> None:
        self._member: zlib._Decompress | None = None

    def feed(self, data: bytes, owner: CheckpointInflater) -> Iterator[bytes]:
        while data:
            if self._member is None:
                stripped = data.lstrip(b"\0")
                owner.consumed += len(data) - len(stripped)
                if not stripped:
                    return
                data, self._member = stripped, zlib.decompressobj(_GZIP_WBITS)
            try:
                out = self._member.decompress(data, OUTPUT)
            except zlib.error as error:
                raise CorruptLayer(f"corrupt gzip data ({error})", owner.consumed) from error
            rest = self._member.unused_data if self._member.eof else self._member.unconsumed_tail
            owner.consumed += len(data) - len(rest)
            if self._member.eof:
                self._member = None
            if out:
                yield out
            if not rest and len(out) < OUTPUT and self._member is not None:
                return
            data = rest

    def finish(self, owner: CheckpointInflater) -> None:
        if self._member is not None:
            raise TruncatedLayer("gzip stream ends early", owner.consumed)


def nearest(checkpoints: list[Checkpoint], offset: int) -> Checkpoint | None:
    """The last checkpoint at or before uncompressed ``offset`` (None: start of the blob)."""
    best = None
    for point in checkpoints:
        if point.uncompressed > offset:
            break
        best = point
    return best


def end_for(checkpoints: list[Checkpoint], offset: int) -> int | None:
    """A blob offset past the compressed bytes that produce output up to ``offset``: the first
    checkpoint at or after it (the deflate data before a boundary ends there), else None."""
    for point in checkpoints:
        if point.uncompressed >= offset:
            return point.compressed + 1
    return None


class Resume:
    """Inflate from a checkpoint: feed blob bytes from ``point.fetch_from``, get output from
    ``point.uncompressed`` on. Only valid inside the first member, where checkpoints are."""

    def __init__(self, point: Checkpoint) -> None:
        self._inflate = _Inflate(_RAW_WBITS, RESUME_OUTPUT)
        self._point = point
        self._primed = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Inflate the next blob bytes (the first call starts at ``point.fetch_from``)."""
        if not self._primed and data:
            self._prime(data[0])
            data = data[1:] if self._point.bits else data
        self._inflate.give(data)
        while True:
            code, _ = self._inflate.run(_Z_NO_FLUSH)
            out = self._inflate.copy()
            if out:
                yield out
            if code != _Z_OK or not out:
                return

    def _prime(self, first: int) -> None:
        """Load the boundary byte's leftover bits, then the window, as zran.c does."""
        self._primed = True
        point, stream = self._point, ctypes.byref(self._inflate.stream)
        if point.bits:
            _ZLIB.prime(stream, point.bits, first >> (8 - point.bits))
        if _ZLIB.set_dictionary(stream, point.window, len(point.window)) != _Z_OK:
            raise CorruptLayer("checkpoint window refused by zlib", point.compressed)

    def close(self) -> None:
        self._inflate.end()


def pack(point: Checkpoint) -> bytes:
    """A checkpoint's window compressed for the cache (level 1, the fastest: a scan packs
    one every ``SPACING`` bytes while it runs; see ``index.encoding.IndexEncoder``)."""
    return zlib_ng.compress(point.window, 1)


_RECORD = struct.Struct("<QQBI")  # compressed, uncompressed, bits, packed window length


def encode(points: Sequence[Checkpoint], packed: Sequence[bytes] = ()) -> bytes:
    """Checkpoints as bytes for the cache: a count, fixed records, then the packed windows.
    ``packed`` holds the windows of the first points, already ``pack``ed."""
    windows = [*packed[: len(points)], *(pack(p) for p in points[len(packed) :])]
    records = b"".join(
        _RECORD.pack(p.compressed, p.uncompressed, p.bits, len(w))
        for p, w in zip(points, windows, strict=True)
    )
    return struct.pack("<I", len(points)) + records + b"".join(windows)


def decode(data: bytes) -> list[Checkpoint]:
    """The inverse of ``encode``; raises ValueError (or zlib.error, struct.error) on anything
    malformed."""
    (count,) = struct.unpack_from("<I", data)
    at = 4 + count * _RECORD.size
    points = []
    for i in range(count):
        compressed, uncompressed, bits, length = _RECORD.unpack_from(data, 4 + i * _RECORD.size)
        window = zlib.decompress(data[at : at + length])
        if len(window) != WINDOW or bits > 7:
            raise ValueError("a checkpoint is malformed")
        points.append(Checkpoint(compressed, uncompressed, bits, window))
        at += length
    if at != len(data):
        raise ValueError("checkpoint data has the wrong length")
    return points
