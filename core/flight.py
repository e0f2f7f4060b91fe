"""Single-flight: concurrent calls for one key share one run of their work.

Ten users who open the same new image within a second would otherwise make ten manifest
requests (ten pulls on Docker Hub's rate limit), ten config downloads, ten TOC reads. With
``Flights.run`` the first caller runs the work and the others wait for its outcome: its
value, or its error, which would have been theirs too (same registry, repository and
credentials, same request). Nothing is kept once the run ends: a call that starts after it
runs the work again, so every answer still starts with a registry check of its own.

Cancelling is local, as in anyio's ``functools`` caches: a waiter that goes away only stops
waiting, and a run whose own caller goes away hands the work on, unfinished, to the callers
still waiting: the first of them runs it afresh and the rest wait for that run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Run(Generic[V]):
    """One run of the work; ``outcome`` is set once it returned a value or raised an error,
    and stays None when it was cancelled (its waiters then run the work themselves)."""

    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: tuple[V] | Exception | None = None


class Flights(Generic[K, V]):
    """The runs in progress, by key. One event loop's: a client lives in one."""

    def __init__(self) -> None:
        self._runs: dict[K, _Run[V]] = {}

    def __len__(self) -> int:
        """Runs in progress (every one ends, whatever becomes of its caller)."""
        return len(self._runs)

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """``work()``'s value, shared with every concurrent call for ``key``."""
        while (run := self._runs.get(key)) is not None:
            await run.done.wait()
            if isinstance(run.outcome, Exception):
                raise run.outcome
            if run.outcome is not None:
                return run.outcome[0]
            # The run's caller went away: the first waiter to wake runs the work afresh.
        return await self._lead(key, work)

    async def _lead(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """Run ``work`` for everyone who comes for ``key`` meanwhile."""
        run: _Run[V] = _Run()
        self._runs[key] = run
        try:
            value = await work()
            run.outcome = (value,)
        except Exception as error:
            run.outcome = error
            raise
        finally:
            del self._runs[key]
            run.done.set()
        return value
