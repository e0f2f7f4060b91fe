"""How far a long read has come, as the front ends show it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a front end shows progress without loading the manifest parser
    from layerpeek.core.image.manifest import Descriptor


@dataclass(frozen=True)
class Progress:
    """How far a long read has come; ``total`` is the blob size when known."""

    bytes_read: int
    total: int
    entries: int


ProgressCallback = Callable[[Progress], None]


def reporter(
    descriptor: Descriptor, on_progress: ProgressCallback | None
) -> Callable[[int, int], None] | None:
    """The scan's ``(bytes, entries)`` callback as the front ends' ``Progress``."""
    if on_progress is None:
        return None
    callback = on_progress

    def report(received: int, entries: int) -> None:
        callback(Progress(received, descriptor.size, entries))

    return report
