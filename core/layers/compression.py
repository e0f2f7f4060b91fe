"""Incremental, bomb-safe decompression of layer blobs: gzip, zstd or none.

Bytes arrive from the network in chunks of any size, so every decompressor here is a push
parser: ``feed(data)`` yields output pieces as soon as they exist and ``finish()`` says
whether the stream ended where its own framing says it should. No single step produces more
than ``MAX_OUTPUT`` bytes, so a layer that inflates 1,000:1 never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal, Protocol

import zstandard
from zlib_ng import zlib_ng as zlib  # the stdlib's API, faster to inflate

from layerpeek.core.errors import CorruptLayer, TruncatedLayer

Compression = Literal["gzip", "zstd", "none"]
Piece = bytes | memoryview
"""A piece of decompressed output: bytes, or a view lent from an inflater's buffer
(``buffers.OutputPool``), valid until given back."""

MAX_OUTPUT = 256 << 10
"""Upper bound on the bytes one output piece may hold."""

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAGIC_LENGTH = len(ZSTD_MAGIC)
"""Bytes ``detect_compression`` needs to tell every format apart."""

_GZIP_WBITS = 31  # 16 + 15: expect a gzip header and trailer, 32 KiB window.
_GZIP_INPUT_SLICE = 1 << 16
_ZSTD_SKIPPABLE_MASK = 0xFFFFFFF0
_ZSTD_SKIPPABLE_MAGIC = 0x184D2A50
_ZSTD_FRAME_MAGIC = int.from_bytes(ZSTD_MAGIC, "little")


def detect_compression(head: bytes) -> Compression:
    """Name the compression of a blob from its first bytes.

    Media types vary by writer (Docker's ``rootfs.diff.tar.gzip``, OCI's ``tar+gzip`` and
    ``tar+zstd``, non-distributable variants) and a mislabelled blob should still read, so
    the magic bytes decide: a zstd stream may also start with a skippable
    frame. Anything else is taken as a plain tar stream,
    which the tar scanner then validates header by header.
    """
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC) or _skippable(head):
        return "zstd"
    return "none"


def _skippable(head: bytes) -> bool:
    """A zstd skippable frame's magic (0x184D2A50-0x184D2A5F): a zstd stream may begin with
    one (metadata a writer puts first), and no tar stream does, as its first byte is a name's."""
    if len(head) < MAGIC_LENGTH:
        return False
    magic = int.from_bytes(head[:MAGIC_LENGTH], "little")
    return magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE_MAGIC


class Decompressor(Protocol):
    """The one interface every format implements.

    ``feed`` returns a lazy iterator that must be exhausted before the next ``feed``;
    ``consumed`` counts the compressed bytes taken in so far, which is the offset reported
    when the stream turns out to be corrupt or short.
    """

    consumed: int

    def feed(self, data: bytes) -> Iterator[Piece]:
        """Take more compressed bytes, yield bounded output pieces."""
        ...

    def finish(self) -> None:
        """Raise TruncatedLayer if the stream stopped inside a member or frame."""
        ...


class CopyingDecompressor(Decompressor, Protocol):
    """A ``Decompressor`` whose pieces are bytes of their own, never views lent from a
    buffer: what a caller may keep or hand on (``make_decompressor``'s three formats)."""

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Take more compressed bytes, yield bounded output pieces."""
        ...


def make_decompressor(kind: Compression) -> CopyingDecompressor:
    """A fresh decompressor for one blob of the given compression."""
    if kind == "gzip":
        return GzipDecompressor()
    if kind == "zstd":
        return ZstdDecompressor()
    return Passthrough()


class Passthrough:
    """The "none" format: tar bytes pass through, cut to ``MAX_OUTPUT`` pieces."""

    def __init__(self) -> None:
        self.consumed = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield bounded slices of ``data`` (``data`` itself when it is small enough)."""
        for start in range(0, len(data), MAX_OUTPUT):
            piece = data[start : start + MAX_OUTPUT]
            self.consumed += len(piece)
            yield piece

    def finish(self) -> None:
        """A plain stream has no framing of its own; the tar scanner judges its end."""


class GzipDecompressor:
    """Multi-member gzip with zlib-ng (the stdlib zlib API).

    eStargz layers are hundreds of concatenated members, and some writers pad the blob with
    zero bytes after the last one, so a member's end starts the next member and zeros between
    members are skipped. Input is inflated in 64 KiB slices: that keeps ``unconsumed_tail``
    copies small when ``max_length`` stops a highly compressed slice early, and pins a
    corruption down to within 64 KiB of where zlib noticed it.
    """

    def __init__(self) -> None:
        self.consumed = 0
        self._member: zlib._Decompress | None = None

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Inflate ``data`` slice by slice, yielding bounded pieces."""
        view = memoryview(data)
        for start in range(0, len(view), _GZIP_INPUT_SLICE):
            yield from self._inflate(view[start : start + _GZIP_INPUT_SLICE])

    def finish(self) -> None:
        """A member that started but never reached its trailer means the blob was cut."""
        if self._member is not None:
            raise TruncatedLayer("gzip stream ends early", self.consumed)

    def _inflate(self, data: bytes | memoryview) -> Iterator[bytes]:
        while True:
            if self._member is None:
                data = self._skip_padding(data)
                if not data:
                    return
                self._member = zlib.decompressobj(_GZIP_WBITS)
            out, data = self._inflate_step(self._member, data)
            if out:
                yield out
            # A full piece may leave output inside zlib even when all input was taken in.
            if not data and len(out) < MAX_OUTPUT:
                return

    def _inflate_step(
        self, member: zlib._Decompress, data: bytes | memoryview
    ) -> tuple[bytes, bytes]:
        """One bounded zlib call; returns its output and the input it did not use."""
        try:
            out = member.decompress(data, MAX_OUTPUT)
        # zlib-ng's stub declares ``error`` as an instance of Exception, not the class it is.
        except zlib.error as error:  # type: ignore[misc]
            raise CorruptLayer(f"corrupt gzip data ({error})", self.consumed) from error
        if member.eof:
            rest = member.unused_data
            self._member = None
        else:
            rest = member.unconsumed_tail
        self.consumed += len(data) - len(rest)
        return out, rest

    def _skip_padding(self, data: bytes | memoryview) -> bytes | memoryview:
        """Drop zero bytes found between members (tar-style padding after the last one)."""
        if not data or data[0]:
            return data
        rest = bytes(data).lstrip(b"\0")
        self.consumed += len(data) - len(rest)
        return rest


class ZstdDecompressor:
    """Multi-frame zstd, with skippable frames, on top of ``zstandard``'s decompressobj.

    ``decompressobj().decompress`` has no output limit, and one 4-byte RLE block expands to
    128 KiB, so bounding output by slicing input blindly is not possible. Instead this reads
    the frame and block headers (RFC 8878 section 3.1) and hands zstd at most one block per
    call: a block never decodes to more than 128 KiB. Knowing the framing also tells a frame
    cut short (which zstd's stream readers report as a clean end) and lets skippable frames,
    such as zstd:chunked's manifest, pass.

    ``frames`` records where each frame starts, as (compressed, uncompressed) offsets: frames
    decode independently, so a layer of several can later be read from the nearest one.
    """

    def __init__(self) -> None:
        self.consumed = 0
        self.produced = 0
        self.frames: list[tuple[int, int]] = []
        self._context = zstandard.ZstdDecompressor()
        self._frame: zstandard.ZstdDecompressionObj | None = None
        self._header = bytearray()
        self._need = 4
        self._parse: Callable[[bytes], None] = self._frame_magic
        self._body = 0
        self._body_kind: Literal["block", "checksum", "skip"] = "block"
        self._last_block = False
        self._checksum = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Walk the framing over ``data``, decoding block bodies as they arrive."""
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._body:
                take = min(self._body, len(view) - pos)
                out = self._body_bytes(view[pos : pos + take])
                if out:
                    yield out
            else:
                take = min(self._need - len(self._header), len(view) - pos)
                self._header += view[pos : pos + take]
                self.consumed += take
                if len(self._header) == self._need:
                    self._parse(bytes(self._header))
            pos += take

    def finish(self) -> None:
        """Anything but a clean frame boundary means the blob was cut."""
        if self._header or self._body or self._frame is not None:
            raise TruncatedLayer("zstd stream ends early", self.consumed)

    def _expect(self, need: int, parse: Callable[[bytes], None], *, keep: bool = False) -> None:
        """Collect ``need`` header bytes (keeping those already read) before ``parse``."""
        if not keep:
            self._header.clear()
        self._need = need
        self._parse = parse

    def _frame_magic(self, header: bytes) -> None:
        magic = int.from_bytes(header, "little")
        if magic == _ZSTD_FRAME_MAGIC:
            self._expect(5, self._frame_descriptor, keep=True)
        elif magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE_MAGIC:
            self._expect(8, self._skippable_size, keep=True)
        else:
            raise CorruptLayer("corrupt zstd data (no frame magic)", self.consumed - 4)

    def _frame_descriptor(self, header: bytes) -> None:
        """Size the rest of the frame header from its descriptor byte (RFC 8878 3.1.1.1)."""
        descriptor = header[4]
        single_segment = descriptor & 0x20
        window = 0 if single_segment else 1
        dictionary = (0, 1, 2, 4)[descriptor & 0x03]
        content_size = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
        self._checksum = bool(descriptor & 0x04)
        self._expect(5 + window + dictionary + content_size, self._frame_header, keep=True)

    def _frame_header(self, header: bytes) -> None:
        self.frames.append((self.consumed - len(header), self.produced))
        self._frame = self._context.decompressobj()
        self._decode(header)
        self._expect(3, self._block_header)

    def _block_header(self, header: bytes) -> None:
        fields = int.from_bytes(header, "little")
        self._decode(header)
        self._last_block = bool(fields & 1)
        block_type = (fields >> 1) & 0x03
        if block_type == 3:
            raise CorruptLayer("corrupt zstd data (reserved block type)", self.consumed - 3)
        # An RLE block (type 1) stores one byte whatever its decoded size.
        self._start_body("block", 1 if block_type == 1 else fields >> 3)

    def _skippable_size(self, header: bytes) -> None:
        self._start_body("skip", int.from_bytes(header[4:8], "little"))

    def _start_body(self, kind: Literal["block", "checksum", "skip"], size: int) -> None:
        self._body_kind = kind
        self._body = size
        if not size:
            self._end_of_body()

    def _body_bytes(self, piece: memoryview) -> bytes:
        """Decode (or skip) the next bytes of a block, checksum or skippable frame."""
        out = b"" if self._body_kind == "skip" else self._decode(piece)
        self.consumed += len(piece)
        self._body -= len(piece)
        if not self._body:
            self._end_of_body()
        return out

    def _end_of_body(self) -> None:
        """Move on after a block body, a frame checksum or a skippable frame's payload."""
        if self._body_kind == "block" and not self._last_block:
            self._expect(3, self._block_header)
        elif self._body_kind == "block" and self._checksum:
            self._start_body("checksum", 4)
        else:
            self._frame = None
            self._expect(4, self._frame_magic)

    def _decode(self, data: bytes | memoryview) -> bytes:
        assert self._frame is not None, "zstd block outside a frame"
        try:
            out = self._frame.decompress(data)
        except zstandard.ZstdError as error:
            raise CorruptLayer(f"corrupt zstd data ({error})", self.consumed) from error
        self.produced += len(out)
        return out
