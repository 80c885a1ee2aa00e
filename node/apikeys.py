"""Management API keys in the node's database (hashes only)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from connectors.http.apikey import hash_api_key, new_api_key
from node.tables import api_keys


def create_api_key(engine: Engine, label: str, *, now: float | None = None) -> tuple[str, str]:
    """Create a key; return ``(key id, key)``. The key is shown once and never stored."""
    key = new_api_key()
    key_id = secrets.token_hex(8)
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                id=key_id, label=label, key_hash=hash_api_key(key),
                created_at=int(time.time() if now is None else now),
            )
        )
    return key_id, key


def revoke_api_key(engine: Engine, key_id: str) -> bool:
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=int(time.time()))
            ).rowcount
        )


class ApiKeyStore:
    """Valid key hashes, re-read from the database at most every ``ttl`` seconds."""

    def __init__(self, engine: Engine, *, ttl: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._ttl = ttl
        self._clock = clock
        self._hashes: tuple[str, ...] = ()
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def hashes(self) -> tuple[str, ...]:
        now = self._clock()
        if now - self._loaded_at >= self._ttl:
            with self._lock:
                if now - self._loaded_at >= self._ttl:
                    with self._engine.connect() as conn:
                        rows = conn.execute(
                            select(api_keys.c.key_hash).where(api_keys.c.revoked_at.is_(None))
                        ).scalars()
                        self._hashes = tuple(rows)
                    self._loaded_at = now
        return self._hashes

    def count(self) -> int:
        return len(self.hashes())
