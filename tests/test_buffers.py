"""OutputPool: an inflater lends views of its buffers instead of copying its output, and a
buffer is written again only once every piece lent from it is back."""

from __future__ import annotations

import gzip

from fixtures.images import seeded_bytes
from layerpeek.core.layers.buffers import OutputPool
from layerpeek.core.layers.checkpoints import CheckpointInflater

SIZE = 64 << 10


def blob() -> tuple[bytes, bytes]:
    """~1.5 MB of half-compressible bytes and their gzip."""
    raw = b"".join(seeded_bytes(i, 3000) + bytes(3000) for i in range(250))
    return raw, gzip.compress(raw, 6)


def inflate(pool: OutputPool, data: bytes, give_back: bool) -> tuple[bytes, list[memoryview]]:
    """Feed ``data`` in 20 KB batches; copy each piece as it comes (what a scanner reads)."""
    inflater = CheckpointInflater(spacing=256 << 10, pool=pool)
    seen, pieces = [], []
    for start in range(0, len(data), 20_000):
        step = list(inflater.feed(data[start : start + 20_000]))
        seen += [bytes(piece) for piece in step]
        pieces += step
        if give_back:
            pool.give_back(step)
    inflater.finish()
    return b"".join(seen), pieces


def test_pieces_kept_are_never_written_over():
    raw, data = blob()
    pool = OutputPool(SIZE)
    seen, pieces = inflate(pool, data, give_back=False)
    assert seen == raw
    assert b"".join(bytes(piece) for piece in pieces) == raw  # still intact at the end
    assert all(isinstance(piece, memoryview) for piece in pieces)


def test_pieces_given_back_let_a_few_buffers_carry_the_whole_stream():
    raw, data = blob()
    pool = OutputPool(SIZE)
    taken = []
    take = pool.take
    pool.take = lambda: taken.append(take()) or taken[-1]  # type: ignore[method-assign]
    seen, _ = inflate(pool, data, give_back=True)
    assert seen == raw
    distinct = {id(buffer) for buffer in taken}
    assert len(taken) >= len(raw) // SIZE and len(distinct) <= 3


def test_a_buffer_comes_back_only_when_retired_and_all_its_pieces_are_back():
    pool = OutputPool(SIZE)
    buffer = pool.take()
    buffer.filled = 100
    first = pool.lend(buffer)
    buffer.filled = 300
    second = pool.lend(buffer)
    assert (len(first), len(second)) == (100, 200)
    pool.give_back([first])
    pool.retire(buffer)
    assert pool.take() is not buffer  # the second piece is still out
    pool.give_back([second, second])  # given back twice: counted once
    assert pool.take() is buffer and buffer.filled == 0


def test_pieces_not_from_the_pool_are_ignored():
    pool, other = OutputPool(SIZE), OutputPool(SIZE)
    mine, theirs = pool.take(), other.take()
    mine.filled = theirs.filled = 10
    lent, foreign = pool.lend(mine), other.lend(theirs)
    pool.retire(mine)
    pool.give_back([b"bytes", memoryview(b"view of bytes"), foreign])
    assert pool.take() is not mine
    pool.give_back([lent])
    assert pool.take() is mine


def test_a_closed_pool_keeps_no_idle_buffer():
    pool = OutputPool(SIZE)
    buffer = pool.take()
    pool.close()
    pool.retire(buffer)
    assert pool.take() is not buffer
