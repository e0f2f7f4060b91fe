"""The minimum rate of a layer stream: bytes per second averaged over a window of waiting.

A per-read timeout lets a registry hold a stream for ever by sending a byte just before each
read would time out. What counts here is the time spent *waiting* on the registry (a consumer
that pauses between two pages costs the registry nothing) and the bytes that arrived in the
last ``window`` seconds of that waiting: an average below ``rate`` bytes per second fails the
stream with one line naming the registry and the blob. Before each wait, ``allowance()`` says
how long that wait may last before the average would fall below the floor, so a stream that
stalls fails at that moment, not one per-read timeout later, and a stream that only trickles
fails as soon as its window is judged.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from layerpeek.core.errors import RegistryTooSlow
from layerpeek.core.text import human_size


class MinimumRate:
    """The rate floor of one stream; ``what`` reads "registry HOST sent blob DIGEST"."""

    def __init__(
        self,
        rate: float,
        window: float,
        what: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.window = window
        self.what = what
        self._clock = clock
        self._waited = 0.0
        self._total = 0
        # (seconds waited, bytes received by then); the first one is the window's start.
        self._samples: deque[tuple[float, int]] = deque([(0.0, 0)])

    def allowance(self) -> float:
        """Seconds the next wait may last, no byte arriving, before the average of the last
        ``window`` seconds falls below ``rate``. No judgement before a full window."""
        floor = self._total - self.rate * self.window
        # The window [T - window, T] fails once it starts past the first sample that had
        # already received more than ``floor``: from then on it holds too few bytes.
        start = next(at for at, total in self._samples if total > floor)
        return max(0.0, start + self.window - self._waited)

    def received(self, size: int, waited: float) -> None:
        """Count ``size`` bytes that arrived after a wait of ``waited`` seconds."""
        self._waited += waited
        if not size:
            return
        self._total += size
        self._samples.append((self._waited, self._total))
        horizon = self._waited - self.window
        while len(self._samples) > 1 and self._samples[1][0] <= horizon:
            self._samples.popleft()

    def too_slow(self) -> RegistryTooSlow:
        return RegistryTooSlow(
            f"{self.what} too slowly: less than {human_size(int(self.rate))}/s on average "
            f"over {self.window:g} s (LAYERPEEK_MIN_RATE, LAYERPEEK_RATE_WINDOW)"
        )

    async def wait(self, receive: Callable[[], Awaitable[bytes]]) -> bytes:
        """``await receive()``, failing with ``too_slow`` once the allowance is spent."""
        started = self._clock()
        with anyio.move_on_after(self.allowance()) as scope:
            chunk = await receive()
        if scope.cancelled_caught:
            raise self.too_slow()
        self.received(len(chunk), self._clock() - started)
        return chunk
