"""What a message's buttons refer to, kept on disk so buttons keep working after a restart.

A custom_id holds at most 100 characters, too few for an image reference plus a platform,
so a message stores its state here under a short random key and its buttons carry the key
(DynamicItem templates parse it back). The core's cache (core/cache/) keeps immutable
content by digest and evicts the least recently used, which suits neither random keys nor a
promised lifetime, so this is a small SQLite table of the bot's own under
``LAYERPEEK_CACHE_DIR``; rows expire after ``state_days``, and a click on an older message
gets a one-line answer instead.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio

KEY_PATTERN = r"[A-Za-z0-9_-]{11}"  # secrets.token_urlsafe(8): 64 random bits

_SCHEMA = """
create table if not exists view_state (
    key text primary key,
    data text not null,
    expires real not null
)
"""


class StateStore:
    """Insert-only state rows by key; sqlite work runs in a worker thread (it blocks)."""

    def __init__(self, path: Path, days: float) -> None:
        self.path = path
        self.lifetime = days * 86400

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10)
        connection.execute(_SCHEMA)
        return connection

    def _put(self, data: dict[str, Any], now: float) -> str:
        key = secrets.token_urlsafe(8)
        with self._connect() as db:
            db.execute("delete from view_state where expires < ?", (now,))
            db.execute(
                "insert into view_state values (?, ?, ?)",
                (key, json.dumps(data), now + self.lifetime),
            )
        return key

    def _get(self, key: str, now: float) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute(
                "select data from view_state where key = ? and expires >= ?", (key, now)
            ).fetchone()
        return json.loads(row[0]) if row else None

    async def put(self, data: dict[str, Any]) -> str:
        """Store ``data`` (JSON-able) and return its new key."""
        return await anyio.to_thread.run_sync(self._put, data, time.time())

    async def get(self, key: str) -> dict[str, Any] | None:
        """The state stored under ``key``; None when unknown or expired."""
        return await anyio.to_thread.run_sync(self._get, key, time.time())
