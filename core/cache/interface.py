"""What the core asks of a cache (``CacheStore``), whichever backend keeps it, and the one
place a backend is chosen (``open_cache``).

Two backends keep that contract: SQLite in one file (``sqlite.AsyncCache``), the default, and
Redis for shared deployments, where several bots and servers should learn each layer once
(``redis_store.RedisCache``), chosen when LAYERPEEK_CACHE_URL is set.

Both also lend leases (``CacheStore.try_lease``), so that processes sharing a cache scan a
layer once between them: the one holding a layer's lease scans it, the others wait for the
index it stores (``wait_for_lease``). What is kept is keyed by ``key_for``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

import anyio

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.extras import install_hint

if TYPE_CHECKING:
    from layerpeek.core.registry.reference import Reference
    from layerpeek.core.settings import Settings

Kind = Literal["index", "manifest", "config"]

LEASE_POLL = 0.25
"""Seconds between two looks of a process waiting for another's lease: a lease is a key or
a lock, so a look is cheap, and a scan worth waiting for takes far longer than this."""
LEASE_RENEW = 5.0
"""Seconds between a holder's renewals while it works; each backend renews no more often
than it must (Redis: every third of its lease's TTL; a lock needs none)."""


def key_for(ref: Reference, digest: str, *, repository: bool = False) -> str:
    """The key content is kept under: the digest, within the registry that served it (or,
    with ``repository``, within that repository alone).

    Content checked against its digest is shared by every repository of its registry, which
    decides who may read a blob and refuses a manifest naming a blob the repository lacks.
    It is never shared across registries: a registry of anyone's choosing could otherwise
    name a digest it does not hold and be answered from another registry's read (a private
    image's config or file list, or a layer it lied about). What only a manifest vouches
    for (a TOC) is kept per repository.
    """
    where = ref.name if repository else ref.registry
    return f"{where}@{digest}"


class CacheStore(Protocol):
    """What the core asks of a cache, whichever backend keeps it.

    Reads return None for anything not held, expired or corrupt; writes never raise for a
    backend that is down or full. ``close`` releases connections; the store must not be used
    after it.
    """

    async def get(self, kind: Kind, digest: str) -> bytes | None: ...

    async def put(self, kind: Kind, digest: str, payload: bytes) -> None: ...

    async def try_lease(self, key: str) -> bool | None:
        """Take the lease of ``key`` (a ``key_for`` key) for this process: True when taken,
        False while another holds it, None when the backend cannot lend one (then work as if
        alone: a cache that is down must not stop anyone). Never waits."""
        ...

    async def renew_lease(self, key: str) -> None:
        """Tell the backend a lease this process holds is still in use (a holder that stops
        renewing is taken for dead once the lease's time runs out)."""
        ...

    async def release_lease(self, key: str) -> None:
        """Give up a lease this process holds; anything else is a no-op."""
        ...

    async def close(self) -> None: ...


async def wait_for_lease(store: CacheStore, key: str) -> bool:
    """Hold the lease of ``key``, waiting while another process holds it: True once held
    (then look in the cache once more before working, since a holder may have stored the
    work and let go since the caller's first look), False when the backend lends no leases
    (work alone: a cache that is down must not stop anyone).

    The wait is as long as the holder lives and works: a dead one's lease ends (the kernel
    drops a dead process's lock, a Redis lease its time runs out), a live one's work is
    bounded by its own limits (read timeouts, ``min_rate``). Cancelling the caller ends it.
    """
    while (taken := await store.try_lease(key)) is False:
        await anyio.sleep(LEASE_POLL)
    return taken is True


def open_cache(settings: Settings) -> CacheStore:
    """The one place a backend is chosen: Redis when ``cache_url`` is set, else SQLite.

    Raises LayerpeekError naming LAYERPEEK_CACHE_URL when the URL cannot be used.
    """
    # Backends are imported here: they depend on this module, not it on them. And importing
    # redis costs a noticeable start-up time that a CLI on SQLite should not pay.
    if not settings.cache_url:
        from layerpeek.core.cache.sqlite import AsyncCache

        return AsyncCache(settings.cache_dir)
    try:
        from layerpeek.core.cache.redis_store import RedisCache
    except ModuleNotFoundError as error:  # redis is the [redis] extra
        hint = install_hint(error, "redis")
        if hint is None:
            raise
        raise LayerpeekError(f"LAYERPEEK_CACHE_URL is a Redis URL: {hint}") from None
    return RedisCache(settings.cache_url)
