"""The embedded cache: what layerpeek learnt about immutable content, kept by digest in one
SQLite file.

A layer, config or manifest never changes once it has a digest, so what is stored under one
is true forever and kept until the size bound evicts the least recently used. Tags move and
are never kept: what a tag means is always asked of the registry (``Layerpeek._manifest``),
which is also the check that the caller may read it. Several processes (a CLI next to a
bot) share the file: WAL lets readers run beside a writer and the busy timeout makes writers
wait their turn instead of failing. Every payload is stored with its sha256; one that no
longer hashes to it (a torn write, a disk error, a hand edit) is dropped and reported as a
miss, so the caller rebuilds it and corrupt data is never served.

``Cache`` is synchronous; ``AsyncCache`` runs each call in a worker thread, because a write
may wait on another process's lock for up to the busy timeout. The cache only saves work: a
database error once it is open (a full disk, a lock held past the timeout) makes a read a
miss and a write a no-op, never a failed command.

Its leases (``interface.CacheStore.try_lease``) are exclusive ``flock``s on files under
``locks/`` beside the database; the kernel frees one when its holder dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

from layerpeek.core.cache.interface import Kind
from layerpeek.core.errors import LayerpeekError

P = ParamSpec("P")
T = TypeVar("T")

FILE_NAME = "layerpeek.sqlite3"
DEFAULT_MAX_BYTES = 512 << 20
BUSY_TIMEOUT = 10.0
_TOUCH_INTERVAL = 60.0
"""A hit rewrites ``used`` only if the last touch is older than this: reads stay reads."""
LOCKS = "locks"
"""The directory, beside the database, of the files the SQLite cache's leases lock."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    payload BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    used REAL NOT NULL,
    PRIMARY KEY (kind, digest)
);
CREATE INDEX IF NOT EXISTS blobs_used ON blobs (used);
DROP TABLE IF EXISTS tags;
"""


def _or_none(method: Callable[P, T]) -> Callable[P, T | None]:
    """A database error turns into None (a miss, or a write that did not happen)."""

    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> T | None:
        with contextlib.suppress(sqlite3.Error):
            return method(*args, **kwargs)
        return None

    return guarded


class Cache:
    """The SQLite store; safe to share between threads of one process and between processes."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.path = directory / FILE_NAME
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LayerpeekError(
                f"cannot open the cache at {self.path}: {exc}; set LAYERPEEK_CACHE_DIR to a "
                "writable directory"
            ) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- content by digest -----------------------------------------------------------------

    @_or_none
    def get(self, kind: Kind, digest: str) -> bytes | None:
        """The payload stored for ``digest``, or None (also when it failed its checksum)."""
        with self._lock:
            row = self._db.execute(
                "SELECT payload, sha256, used FROM blobs WHERE kind = ? AND digest = ?",
                (kind, digest),
            ).fetchone()
            if row is None:
                return None
            payload, checksum, used = row
            if hashlib.sha256(payload).hexdigest() != checksum:
                self._db.execute("DELETE FROM blobs WHERE kind = ? AND digest = ?", (kind, digest))
                return None
            now = time.time()
            if now - used > _TOUCH_INTERVAL:
                self._db.execute(
                    "UPDATE blobs SET used = ? WHERE kind = ? AND digest = ?",
                    (now, kind, digest),
                )
            return bytes(payload)

    @_or_none
    def put(self, kind: Kind, digest: str, payload: bytes) -> None:
        """Store ``payload`` (replacing any older copy), then evict down to ``max_bytes``."""
        if len(payload) > self.max_bytes:
            return  # larger than the whole cache: keeping it would evict everything else
        checksum = hashlib.sha256(payload).hexdigest()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?, ?)",
                (kind, digest, payload, checksum, len(payload), time.time()),
            )
            self._evict()

    def _evict(self) -> None:
        """Drop least recently used payloads until the total fits ``max_bytes``."""
        (total,) = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()
        if total <= self.max_bytes:
            return
        rows = self._db.execute("SELECT kind, digest, size FROM blobs ORDER BY used").fetchall()
        doomed = []
        for kind, digest, size in rows:
            if total <= self.max_bytes:
                break
            doomed.append((kind, digest))
            total -= size
        self._db.executemany("DELETE FROM blobs WHERE kind = ? AND digest = ?", doomed)

    def stored_bytes(self) -> int:
        """The payload bytes held now."""
        with self._lock:
            (total,) = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()
        return int(total)


class FileLeases:
    """Leases as exclusive ``flock``s on one file per key, held by this process.

    A holder that dies loses its lock with its last file descriptor, so a lease never
    outlives its process and needs no expiry. A released lease unlinks its file, so files do
    not pile up one per layer; a process that locked a file just unlinked (opened before the
    unlink) sees that the path no longer names it and does not count it as taken.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        """The lock file of ``key``: named by its hash, since a key holds ``/`` and ``:``."""
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()}.lock"

    def take(self, key: str) -> bool | None:
        """True once locked, False while another holds it; None when no lock can be had (a
        read-only cache directory, a file system without flock)."""
        with self._lock:
            if key in self._held:
                return False  # held by another caller of this process: it scans
            path = self.path(key)
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    raise BlockingIOError  # unlinked by its releaser after we opened it
            except (FileNotFoundError, BlockingIOError):
                os.close(fd)
                return False
            except OSError:
                os.close(fd)
                return None
            self._held[key] = fd
            return True

    def release(self, key: str) -> None:
        """Unlink the file, then unlock it: a waiter then locks a new file, never this one."""
        with self._lock:
            fd = self._held.pop(key, None)
            if fd is None:
                return
            with contextlib.suppress(OSError):
                os.unlink(self.path(key))
            os.close(fd)  # closing the last descriptor releases the flock

    def release_all(self) -> None:
        for key in list(self._held):
            self.release(key)


class AsyncCache:
    """``Cache`` for the event loop: the database is opened lazily, every call in a thread."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self._max_bytes = max_bytes
        self._cache: Cache | None = None
        self._opening = anyio.Lock()
        self._leases = FileLeases(directory / LOCKS)

    async def _store(self) -> Cache:
        async with self._opening:
            store = self._cache
            if store is None:
                opening = functools.partial(Cache, self.directory, max_bytes=self._max_bytes)
                store = self._cache = await anyio.to_thread.run_sync(opening)
        return store

    async def get(self, kind: Kind, digest: str) -> bytes | None:
        store = await self._store()
        return await anyio.to_thread.run_sync(store.get, kind, digest)

    async def put(self, kind: Kind, digest: str, payload: bytes) -> None:
        store = await self._store()
        await anyio.to_thread.run_sync(store.put, kind, digest, payload)

    async def try_lease(self, key: str) -> bool | None:
        return await anyio.to_thread.run_sync(self._leases.take, key)

    async def renew_lease(self, key: str) -> None:
        """Nothing to renew: a lock lasts as long as its holder."""

    async def release_lease(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._leases.release, key)

    async def close(self) -> None:
        """Close the database if it was opened (a later call opens it again); release leases."""
        await anyio.to_thread.run_sync(self._leases.release_all)
        async with self._opening:
            store, self._cache = self._cache, None
        if store is not None:
            await anyio.to_thread.run_sync(store.close)
