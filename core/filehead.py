"""The start of a file: what a front end shows of it, read no further than it must."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass


@dataclass(frozen=True)
class Head:
    data: bytes
    """The file's first bytes, at most the limit asked for."""
    complete: bool
    """True when ``data`` is the whole file."""
    size: int | None
    """The whole file's size; None unless it was read to its end (``whole``)."""
    sha256: str | None
    """The whole file's sha256; None unless it was read to its end (``whole``)."""


async def read_head(
    chunks: AsyncGenerator[bytes, None], limit: int, *, whole: bool = False
) -> Head:
    """The first ``limit`` bytes of a file's ``chunks`` (``Layerpeek.read``), which are closed
    before this returns. Reading stops one byte past ``limit`` (enough to know whether there
    is more) unless ``whole``: then the file is read to its end for its size and sha256."""
    kept = bytearray()
    hasher = hashlib.sha256() if whole else None
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            kept += chunk[: limit + 1 - len(kept)]
            if hasher is not None:
                hasher.update(chunk)
            elif size > limit:
                break
    finally:
        await chunks.aclose()
    return Head(
        data=bytes(kept[:limit]),
        complete=len(kept) <= limit,
        size=size if hasher is not None else None,
        sha256=hasher.hexdigest() if hasher is not None else None,
    )
