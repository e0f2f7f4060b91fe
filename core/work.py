"""How much work one user or one token may have running at once.

The bot and the HTTP MCP server serve many people from one process: without a bound, one of
them can start calls faster than slow registries answer them and hold every connection and
worker the process has. ``WorkSlots`` counts what each key has running and refuses one more
at once, with one line, rather than queueing it behind the rest.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from layerpeek.core.errors import LayerpeekError


class Busy(LayerpeekError):
    """A user or token already has as much work running as it may."""


class WorkSlots:
    """At most ``limit`` pieces of work running at once per key; a key with none is forgotten."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[Hashable, int] = {}

    def running(self, key: Hashable) -> int:
        return self._running.get(key, 0)

    @contextmanager
    def hold(self, key: Hashable, refusal: str) -> Iterator[None]:
        """Count one piece of work for ``key`` while the block runs; ``Busy(refusal)`` when
        ``key`` already has ``limit`` running."""
        running = self.running(key)
        if running >= self.limit:
            raise Busy(refusal)
        self._running[key] = running + 1
        try:
            yield
        finally:
            left = self._running[key] - 1
            if left:
                self._running[key] = left
            else:
                del self._running[key]
