"""Opening what every front end works through: the registry client, the cache and the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings


@asynccontextmanager
async def open_service(settings: Settings, *, guarded: bool) -> AsyncIterator[Layerpeek]:
    """The service over one registry client and the cache ``settings`` name, closed on exit.

    ``guarded``: references come from someone other than the machine's user (a model, a chat),
    so registries resolving to private addresses are refused unless allowed; the CLI is not.
    """
    async with RegistryClient(settings, guarded=guarded) as client, Layerpeek(client) as peek:
        yield peek


async def _open_and_close(settings: Settings, guarded: bool) -> None:
    async with open_service(settings, guarded=guarded):
        pass


def check_service(settings: Settings, *, guarded: bool) -> None:
    """Open (and close) the service once, before a long-running front end starts: a bad
    allow-list entry, CA bundle or cache setting is then one line from its entry point,
    not a traceback from inside a transport's or a bot's startup."""
    anyio.run(_open_and_close, settings, guarded)
