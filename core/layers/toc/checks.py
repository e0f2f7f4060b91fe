"""What the TOC readers check of what a registry sends: a span of exactly the length asked
for, and data that hashes to the digest recorded for it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from layerpeek.core.errors import CorruptLayer, DigestMismatch, LayerpeekError
from layerpeek.core.layers.toc.model import Fetch


async def fetch_span(fetch: Fetch, start: int, stop: int) -> bytes:
    """Bytes ``start`` up to ``stop`` (exclusive), refusing a short answer."""
    data = await fetch(start, stop - 1)
    if len(data) != stop - start:
        raise CorruptLayer(
            f"asked for bytes {start:,}-{stop - 1:,} of the blob, got {len(data):,}", start
        )
    return data


class Hash:
    """A running digest checked against the one recorded for the data (none recorded: nothing
    to check); a mismatch raises ``error`` with ``message``."""

    def __init__(
        self, expected: str, message: str, error: type[LayerpeekError] = DigestMismatch
    ) -> None:
        self._expected = expected
        self._message = message
        self._error = error
        self._hash = _hasher(expected) if expected else None

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)

    def hashed(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        """``pieces`` passed through, each added to the digest on its way."""
        return iter(pieces) if self._hash is None else digesting(pieces, self._hash)

    def verify(self) -> None:
        if self._hash is None:
            return
        if f"{self._hash.name}:{self._hash.hexdigest()}" != self._expected:
            raise self._error(self._message)


def _hasher(like: str) -> hashlib._Hash:
    """A fresh hash of the algorithm the digest ``like`` names (sha256, sha512...)."""
    algorithm = like.partition(":")[0]
    if algorithm not in hashlib.algorithms_guaranteed:
        raise CorruptLayer(f"unsupported digest algorithm in {like[:80]!r}")
    return hashlib.new(algorithm)


def digesting(pieces: Iterable[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    """``pieces`` passed through, each added to ``digest`` on its way."""
    for piece in pieces:
        digest.update(piece)
        yield piece
