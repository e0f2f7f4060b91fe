"""The one place layerpeek writes an httpx internal: a transport's connection pool.

The network guard must open every connection itself (``guard.GuardedBackend``), but httpx
0.28's ``AsyncHTTPTransport`` takes no network backend. So ``use_backend`` replaces the
transport's private ``_pool``, the one object its ``handle_async_request`` and ``aclose``
use, with an httpcore pool (httpcore's public API) that connects through the backend.

httpx is pinned below 0.29, and tests/test_guard.py fails, saying so, if the attribute moves
or stops carrying the transport's requests. There is no fallback that keeps the guard: a
transport without the attribute is refused (``LayerpeekError``), never used unguarded.
"""

from __future__ import annotations

import ssl

import httpcore
import httpx

from layerpeek.core.errors import LayerpeekError

POOL = "_pool"
"""The attribute of ``httpx.AsyncHTTPTransport`` that holds its httpcore connection pool."""


def has_pool(transport: httpx.AsyncHTTPTransport) -> bool:
    """Whether ``transport`` keeps its connections in an httpcore pool at ``POOL``."""
    return isinstance(getattr(transport, POOL, None), httpcore.AsyncConnectionPool)


def use_backend(
    transport: httpx.AsyncHTTPTransport,
    backend: httpcore.AsyncNetworkBackend,
    ssl_context: ssl.SSLContext,
    limits: httpx.Limits,
) -> None:
    """Make ``transport`` connect through ``backend``, with the same TLS and limits.

    Raises LayerpeekError when this httpx keeps no pool where ``POOL`` says.
    """
    if not has_pool(transport):
        raise LayerpeekError(
            f"cannot guard connections with httpx {httpx.__version__}: its transport keeps "
            "no connection pool where layerpeek expects one (install httpx 0.28)"
        )
    pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=backend,
    )
    setattr(transport, POOL, pool)
