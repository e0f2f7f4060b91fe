"""``core.filehead.read_head``: what the bot's /cat, the MCP read_file and triage's os-release
read of a file's start."""

from __future__ import annotations

import hashlib

from layerpeek.core.filehead import read_head

CHUNKS = [b"a" * 10, b"b" * 10, b"c" * 10]


class Chunks:
    """A file's chunks as ``Layerpeek.read`` yields them, counting what was pulled."""

    def __init__(self) -> None:
        self.pulled = 0
        self.closed = False

    async def stream(self):
        try:
            for chunk in CHUNKS:
                self.pulled += 1
                yield chunk
        finally:
            self.closed = True


async def test_reading_stops_one_byte_past_the_limit_and_closes_the_stream():
    source = Chunks()
    head = await read_head(source.stream(), 10)
    assert head.data == b"a" * 10 and not head.complete
    assert source.pulled == 2 and source.closed
    assert head.size is None and head.sha256 is None


async def test_a_file_within_the_limit_is_complete():
    head = await read_head(Chunks().stream(), 30)
    assert head.data == b"".join(CHUNKS) and head.complete


async def test_whole_reads_to_the_end_for_size_and_digest():
    source = Chunks()
    head = await read_head(source.stream(), 5, whole=True)
    assert head.data == b"aaaaa" and not head.complete and source.pulled == 3
    assert head.size == 30 and head.sha256 == hashlib.sha256(b"".join(CHUNKS)).hexdigest()
