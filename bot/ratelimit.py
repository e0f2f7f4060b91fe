"""Per-user and per-guild limits on expensive commands (each one reads layers from a registry).

One channel member hammering /peek should neither exhaust the registry's pull quota for
everyone nor keep the bot busy; a sliding window per key is enough for that.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from layerpeek.core.errors import LayerpeekError
from layerpeek.links.window import SlidingWindow


class TooManyRequests(LayerpeekError):
    """A user or guild used up its share of expensive commands for now."""


class RateLimits:
    """The user's window and the guild's window, checked together."""

    def __init__(
        self, per_user: int, per_guild: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.users = SlidingWindow(per_user, 60.0, clock)
        self.guilds = SlidingWindow(per_guild, 60.0, clock)

    def check(self, user: int, guild: int | None) -> None:
        """Record one expensive command, or raise TooManyRequests saying how long to wait."""
        wait = self.users.wait(user)
        if wait:
            raise TooManyRequests(f"you are going fast: try again in {wait:.0f} s")
        if guild is not None:
            wait = self.guilds.wait(guild)
            if wait:
                raise TooManyRequests(f"this server is busy with images: try again in {wait:.0f} s")
