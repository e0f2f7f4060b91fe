"""A sliding-window rate limit: the link endpoint's downloads and the bot's commands use it."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Hashable


class SlidingWindow:
    """At most ``limit`` events per ``seconds`` for each key."""

    def __init__(
        self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self.clock = clock
        self._events: defaultdict[Hashable, deque[float]] = defaultdict(deque)

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` may act again; 0 means now (and records the event)."""
        now = self.clock()
        events = self._events[key]
        while events and events[0] <= now - self.seconds:
            events.popleft()
        if len(events) >= self.limit:
            return events[0] + self.seconds - now
        events.append(now)
        return 0.0
