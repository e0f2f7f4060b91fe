"""Per-user and per-guild limits on expensive commands (each one reads layers from a registry).

One channel member hammering /peek should neither exhaust the registry's pull quota for
everyone nor keep the bot busy; a sliding window per key is enough for that. Nor should one
member's commands waiting on a slow registry pile up: each user has a few running at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.work import WorkSlots
from layerpeek.links.window import SlidingWindow


class TooManyRequests(LayerpeekError):
    """A user or guild used up its share of expensive commands for now."""


class RateLimits:
    """The user's window and the guild's window, checked together; the user's running work."""

    def __init__(
        self,
        per_user: int,
        per_guild: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        concurrent: int = 2,
    ) -> None:
        self.users = SlidingWindow(per_user, 60.0, clock)
        self.guilds = SlidingWindow(per_guild, 60.0, clock)
        self.running = WorkSlots(concurrent)

    def working(self, user: int) -> AbstractContextManager[None]:
        """Count one command of ``user`` as running while the block runs; ``Busy`` at once
        (one line for the user) when they already have as many running as allowed."""
        limit = self.running.limit
        return self.running.hold(
            user,
            f"you already have {limit} command{'s' if limit > 1 else ''} running: "
            "wait for one to finish, then try again",
        )

    def check(self, user: int, guild: int | None) -> None:
        """Record one expensive command, or raise TooManyRequests saying how long to wait."""
        wait = self.users.wait(user)
        if wait:
            raise TooManyRequests(f"you are going fast: try again in {wait:.0f} s")
        if guild is not None:
            wait = self.guilds.wait(guild)
            if wait:
                raise TooManyRequests(f"this server is busy with images: try again in {wait:.0f} s")
