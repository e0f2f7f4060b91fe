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
        self._swept = clock()

    def __len__(self) -> int:
        """How many keys are remembered (those with an event in the last window or two)."""
        return len(self._events)

    def wait(self, key: Hashable, record: bool = True) -> float:
        """Seconds until ``key`` may act again; 0 means now (and records the event, unless
        ``record`` is false: asking whether it could)."""
        now = self.clock()
        self._sweep(now)
        events = self._events[key]
        while events and events[0] <= now - self.seconds:
            events.popleft()
        if len(events) >= self.limit:
            return events[0] + self.seconds - now
        if record:
            events.append(now)
        elif not events:
            del self._events[key]
        return 0.0

    def _sweep(self, now: float) -> None:
        """Forget keys with no event in the window, once a window: keys can be one-off (a
        link that is its own quota), and would otherwise be kept for the process's life."""
        if now < self._swept + self.seconds:
            return
        self._swept = now
        stale = now - self.seconds
        idle = [key for key, events in self._events.items() if not events or events[-1] <= stale]
        for key in idle:
            del self._events[key]
