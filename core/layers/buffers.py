"""Output buffers an inflater lends to the tar scanner instead of copying its output out.

Copying each piece of output out of the inflater's one buffer cost the inflater thread a
measurable part of a full listing, with the interpreter lock held, on the thread a listing
waits for. With an ``OutputPool`` the inflater writes into a
``Buffer`` from the pool and lends out views of what it wrote; the scan gives each piece
back once it has scanned it. A buffer is reused only once the inflater has moved on from it
(``retire``) and every piece lent from it is back, so no piece is overwritten while it is
read, and a piece never given back stays valid: its buffer is simply never reused.

Pieces end where the inflater's input ends, and the next ones continue in the same buffer,
so a piece holds no more memory than its bytes and the memory of a scan stays what its
queues bound (``pump.AHEAD``), not a whole buffer per piece.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterable

from layerpeek.core.layers.compression import Piece


class Buffer:
    """One output buffer. The inflater writes at ``filled``; ``[lent_to:filled]`` is
    written and not lent yet; ``out`` counts the pieces lent and not given back."""

    __slots__ = ("address", "filled", "lent_to", "memory", "out", "retired", "view")

    def __init__(self, size: int) -> None:
        self.memory = ctypes.create_string_buffer(size)
        self.address = ctypes.addressof(self.memory)
        self.view = memoryview(self.memory).cast("B")
        self.filled = self.lent_to = self.out = 0
        self.retired = False

    @property
    def room(self) -> int:
        """Bytes left to write into."""
        return len(self.view) - self.filled


class OutputPool:
    """The buffers of one scan: taken and retired by its inflater thread, lent pieces given
    back by its scanner thread; at most ``keep`` idle buffers are kept for reuse."""

    def __init__(self, size: int, keep: int = 1) -> None:
        self.size = size
        self._keep = keep
        self._free: list[Buffer] = []
        self._in_use: dict[int, Buffer] = {}  # by id of the memory its pieces point into
        self._lock = threading.Lock()

    def take(self) -> Buffer:
        """An empty buffer for the inflater to write into."""
        with self._lock:
            buffer = self._free.pop() if self._free else Buffer(self.size)
            self._in_use[id(buffer.memory)] = buffer
        return buffer

    def lend(self, buffer: Buffer) -> memoryview:
        """What was written into ``buffer`` since it last lent, as a piece (maybe empty)."""
        with self._lock:
            piece = buffer.view[buffer.lent_to : buffer.filled]
            buffer.lent_to = buffer.filled
            buffer.out += 1 if piece else 0
        return piece

    def retire(self, buffer: Buffer) -> None:
        """The inflater is done writing into ``buffer``: reuse it once its pieces are back."""
        with self._lock:
            buffer.retired = True
            self._reuse_if_done(buffer)

    def give_back(self, pieces: Iterable[Piece]) -> None:
        """The caller has read these pieces and will not read them again: each once. Pieces
        that are not this pool's (bytes, another pool's views) are ignored."""
        with self._lock:
            for piece in pieces:
                owner = piece.obj if isinstance(piece, memoryview) else None
                buffer = self._in_use.get(id(owner))
                if buffer is not None and buffer.memory is owner and buffer.out:
                    buffer.out -= 1
                    self._reuse_if_done(buffer)

    def close(self) -> None:
        """Keep no idle buffer from now on: the scan is over, its memory can go."""
        with self._lock:
            self._keep = 0
            self._free.clear()

    def _reuse_if_done(self, buffer: Buffer) -> None:
        """Caller holds the lock."""
        if buffer.retired and not buffer.out:
            del self._in_use[id(buffer.memory)]
            if len(self._free) < self._keep:
                buffer.filled = buffer.lent_to = 0
                buffer.retired = False
                self._free.append(buffer)
