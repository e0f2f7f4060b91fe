"""The cache for shared deployments: the SQLite cache's contract, kept in one Redis.

Several bots and MCP servers pointed at one Redis (LAYERPEEK_CACHE_URL) learn each layer once.
Keys are namespaced and versioned, ``layerpeek:v1:index:sha256:…``, so layerpeek can share a
Redis with other programs and a later encoding can live beside this one.

- Content by digest (layer indexes, configs, manifests) is stored as the payload's sha256
  (32 raw bytes) followed by the payload. A value that no longer hashes to its prefix is
  deleted and reported as a miss: corrupt data is never served, the caller rebuilds it.

- Leases (``layerpeek:v1:lease:<key_for key>``) hold a random token of their holder, set
  with NX and a TTL (``lease_ttl``) that the holder renews while it works, and deleted by
  it (only if the token is still its own) when done. A holder that dies stops renewing, so
  its lease ends at most ``lease_ttl`` later and a waiter takes it.

The size bound is Redis's own: ``maxmemory`` with ``maxmemory-policy allkeys-lru`` evicts the
least recently used keys, as the SQLite cache does. Content keys also carry a sliding idle TTL
(``idle_ttl``, renewed by every hit through GETEX, Redis ≥ 6.2), so every layerpeek key is
evictable under ``volatile-lru`` too (a Redis shared with data that must never be evicted) and
a Redis left without ``maxmemory`` still forgets layers nobody looked at for a month.

The cache only saves work: a Redis that is down, slow, full or refusing a command makes a
read a miss and a write a no-op, never a failed command. A dead one must not make every
command slow either: a short socket timeout, one retry (which reconnects a pooled connection
the server closed), and after a connection failure no call tries again for ``RETRY_AFTER``
seconds, so an unreachable Redis costs one timeout per half minute, not one per lookup.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from layerpeek.core.cache.interface import Kind
from layerpeek.core.errors import LayerpeekError

P = ParamSpec("P")
T = TypeVar("T")

NAMESPACE = "layerpeek:v1"
IDLE_TTL = 30 * 24 * 3600.0
TIMEOUT = 3.0
"""Seconds to connect or to wait for a reply; a cache slower than this is not worth waiting for
(a URL may still set ``?socket_timeout=…&socket_connect_timeout=…``)."""
LEASE_TTL = 60.0
"""Seconds a lease outlives its last renewal: how long a dead holder keeps waiters waiting.
A live one renews it at every step of its scan (at most every third of this)."""
RETRY_AFTER = 30.0
"""Seconds every call is a quiet miss after Redis could not be reached."""
URL_FORMS = (
    "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://… (TLS) or unix:///PATH/TO/redis.sock"
)
_CHECKSUM = hashlib.sha256().digest_size
_DB = re.compile(r"/?\d*")
_RENEW = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"""
_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1]) end return 0"""


Method = Callable[Concatenate["RedisCache", P], Coroutine[Any, Any, T]]
"""A coroutine method of ``RedisCache``: what ``CacheStore``'s ``async def``s are."""


def _or_none(method: Method[P, T]) -> Method[P, T | None]:
    """A Redis error turns into None (a miss, or a write that did not happen); one that says
    Redis is unreachable also skips Redis for ``RETRY_AFTER`` seconds."""

    @functools.wraps(method)
    async def guarded(self: RedisCache, /, *args: P.args, **kwargs: P.kwargs) -> T | None:
        if self._clock() < self._down_until:
            return None
        try:
            return await method(self, *args, **kwargs)
        except (exceptions.ConnectionError, exceptions.TimeoutError, OSError):
            self._down_until = self._clock() + RETRY_AFTER
        except exceptions.RedisError:  # e.g. OOM with noeviction: this call only
            pass
        return None

    return guarded


def _url_problem(url: str) -> str | None:
    """What redis-py would silently accept but we will not: no host, no socket, a bad db."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced [ in an IPv6 host
        return str(exc)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return f"unsupported scheme {parts.scheme + '://' if parts.scheme else '(none)'}"
    if parts.scheme == "unix":
        return None if parts.path else "no socket path"
    if not parts.hostname:
        return "no host"
    return None if _DB.fullmatch(parts.path) else f"database {parts.path[1:]!r} is not a number"


def client_for(url: str) -> aioredis.Redis:
    """A client for ``url`` (it connects on first use), or one line naming the setting.

    The message never repeats the URL: it may hold a password.
    """
    problem = _url_problem(url)
    if problem is None:
        try:
            client = aioredis.from_url(
                url,
                socket_timeout=TIMEOUT,
                socket_connect_timeout=TIMEOUT,
                retry=Retry(NoBackoff(), 1),
            )
            pool = client.connection_pool
            # An unknown ?option is only passed to the connection: build one (it does not
            # connect) so the mistake shows now, not as a TypeError on the first command.
            pool.connection_class(**pool.connection_kwargs)
            return client
        except (TypeError, ValueError) as exc:
            problem = str(exc)
    raise LayerpeekError(f"invalid LAYERPEEK_CACHE_URL: {problem}; use {URL_FORMS}")


def content_key(kind: Kind, digest: str) -> str:
    return f"{NAMESPACE}:{kind}:{digest}"


def lease_key(key: str) -> str:
    return f"{NAMESPACE}:lease:{key}"


def _milliseconds(seconds: float) -> int:
    """Redis TTLs are whole milliseconds and must be positive."""
    return max(1, round(seconds * 1000))


class RedisCache:
    """The cache in Redis: one client (and connection pool) per process, on asyncio (redis-py
    has no trio client; every front end runs on asyncio)."""

    def __init__(
        self,
        url: str,
        *,
        idle_ttl: float = IDLE_TTL,
        lease_ttl: float = LEASE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_ttl = idle_ttl
        self.lease_ttl = lease_ttl
        self._redis = client_for(url)
        self._clock = clock
        self._down_until = float("-inf")
        self._token = secrets.token_hex(16)
        self._leases: dict[str, float] = {}  # held by this process: key -> last renewed

    async def close(self) -> None:
        """Release the leases still held (waiters need not wait out their TTL), then close."""
        for key in list(self._leases):
            await self.release_lease(key)
        await self._redis.aclose()

    # -- content by digest -----------------------------------------------------------------

    @_or_none
    async def get(self, kind: Kind, digest: str) -> bytes | None:
        """The payload stored for ``digest``, or None (also when it failed its checksum)."""
        key = content_key(kind, digest)
        value = await self._redis.getex(key, px=_milliseconds(self.idle_ttl))
        if not isinstance(value, bytes):  # None; the client decodes nothing (no decode_responses)
            return None
        checksum, payload = value[:_CHECKSUM], value[_CHECKSUM:]
        if hashlib.sha256(payload).digest() != checksum:
            await self._redis.delete(key)
            return None
        return payload

    @_or_none
    async def put(self, kind: Kind, digest: str, payload: bytes) -> None:
        """Store ``payload`` (replacing any older copy); Redis evicts when it is full."""
        value = hashlib.sha256(payload).digest() + payload
        await self._redis.set(content_key(kind, digest), value, px=_milliseconds(self.idle_ttl))

    # -- leases ----------------------------------------------------------------------------

    @_or_none
    async def try_lease(self, key: str) -> bool:
        """Take ``key``'s lease unless anyone, this process included, holds it."""
        if key in self._leases:
            return False  # held by another caller of this process: it works
        now = self._clock()
        ttl = _milliseconds(self.lease_ttl)
        if not await self._redis.set(lease_key(key), self._token, nx=True, px=ttl):
            return False
        self._leases[key] = now
        return True

    async def renew_lease(self, key: str) -> None:
        """Push the lease's end ``lease_ttl`` away, at most every third of it."""
        renewed = self._leases.get(key)
        if renewed is not None and self._clock() - renewed >= self.lease_ttl / 3:
            self._leases[key] = self._clock()
            await self._run(_RENEW, key, _milliseconds(self.lease_ttl))

    async def release_lease(self, key: str) -> None:
        """Forget the lease here, then delete it in Redis if it is still ours (one that
        expired and was taken by another is theirs)."""
        if self._leases.pop(key, None) is not None:
            await self._run(_RELEASE, key)

    @_or_none
    async def _run(self, script: str, key: str, *args: int) -> None:
        await self._redis.eval(script, 1, lease_key(key), self._token, *args)
