"""SQL implementations of the verifier's stores (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from connectors.identity.tables import registry_documents, replay

PURGE_EVERY = 60.0  # seconds between opportunistic purges of expired token ids
SQLITE_WRITE_PATIENCE = 5.0  # seconds to keep retrying a busy SQLite before giving up (503)
# Built once: constructing ``insert().values(...)`` per call costs ~4x the database work.
_INSERT_REPLAY = insert(replay)
_SQLITE_INSERT = "INSERT INTO identity_replay (issuer, jti, expires_at) VALUES (?, ?, ?)"


class SqlReplayStore:
    """``jti`` replay store shared by every process using the same database.

    The primary key makes the check-and-insert atomic: a second insert of the same
    ``(issuer, jti)`` fails, whichever process or worker tries it. Database errors
    propagate (the HTTP layer answers 503), so a token is never accepted unrecorded.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float],
                 sqlite_patience: float = SQLITE_WRITE_PATIENCE) -> None:
        self._engine = engine
        self._clock = clock
        self._patience = sqlite_patience
        self._next_purge = 0.0
        self._lock = threading.Lock()
        self._write_lock: threading.Lock | None = None
        self._async_commit = engine.dialect.name == "postgresql"
        self._sqlite_path: str | None = None
        self._raw: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._pid = 0
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            # The hottest write of the node. SQLite has one writer at a time and waits for
            # the lock by sleeping (whole milliseconds, longer on a busy machine), which
            # dominates when gunicorn workers insert concurrently. Instead, threads of this
            # process queue on a lock and processes on an flock beside the database (the
            # kernel wakes the next waiter at once); one autocommit connection per process.
            self._write_lock = threading.Lock()
            self._sqlite_path = engine.url.database

    def remember(self, issuer: str, jti: str, expires_at: int) -> bool:
        if self._write_lock is None:
            inserted = self._insert(issuer, jti, expires_at)
        else:
            with self._write_lock:
                inserted = self._insert_sqlite(issuer, jti, expires_at)
        if inserted:
            self._maybe_purge()
        return inserted

    def _insert(self, issuer: str, jti: str, expires_at: int) -> bool:
        try:
            with self._engine.begin() as conn:
                if self._async_commit:
                    # Do not wait for the WAL flush: the row is visible to every worker at
                    # once; only a server crash within ~0.6 s could forget it (as SQLite's
                    # synchronous=NORMAL could), which re-opens at most that token's window.
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                conn.execute(_INSERT_REPLAY,
                             {"issuer": issuer, "jti": jti, "expires_at": expires_at})
        except IntegrityError:
            return False
        return True

    def _insert_sqlite(self, issuer: str, jti: str, expires_at: int) -> bool:
        if self._pid != os.getpid():  # first use in this process (never share across fork)
            self._raw = _fail_fast_connection(self._sqlite_path or "")
            self._lock_fd = os.open(f"{self._sqlite_path}-replay.lock",
                                    os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        assert self._raw is not None and self._lock_fd is not None
        deadline = time.monotonic() + self._patience
        delay = 50e-6
        params = (issuer, jti, expires_at)
        while True:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._raw.execute(_SQLITE_INSERT, params)  # autocommit: one atomic statement
                return True
            except sqlite3.IntegrityError:
                return False
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() >= deadline:
                    # as SQLAlchemy would raise it, so the HTTP layer answers 503
                    raise OperationalError(_SQLITE_INSERT, params, exc) from None
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            time.sleep(delay)  # another kind of writer holds the database: back off
            delay = min(delay * 2, 2e-3)

    def _maybe_purge(self) -> None:
        now = self._clock()
        if now >= self._next_purge and self._lock.acquire(blocking=False):
            try:
                self._next_purge = now + PURGE_EVERY
                self.purge(now)
            finally:
                self._lock.release()

    def purge(self, now: float | None = None) -> int:
        """Delete token ids whose tokens have expired; return how many."""
        cutoff = int(self._clock() if now is None else now)
        with self._engine.begin() as conn:
            return conn.execute(delete(replay).where(replay.c.expires_at < cutoff)).rowcount or 0


def _fail_fast_connection(path: str) -> sqlite3.Connection:
    """An autocommit connection to the SQLite file whose writes fail at once when busy."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=0")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SqlRegistryStore:
    """Keeps the last verified registry document per authority."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def load(self, authority: str) -> str | None:
        with self._engine.connect() as conn:
            return conn.execute(
                select(registry_documents.c.document).where(
                    registry_documents.c.authority == authority
                )
            ).scalar_one_or_none()

    def save(self, authority: str, document: str, fetched_at: int) -> None:
        with self._engine.begin() as conn:
            updated = conn.execute(
                update(registry_documents)
                .where(registry_documents.c.authority == authority)
                .values(document=document, fetched_at=fetched_at)
            ).rowcount
            if not updated:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(registry_documents).values(
                                authority=authority, document=document, fetched_at=fetched_at
                            )
                        )
                except IntegrityError:
                    pass  # a concurrent writer stored it first; either copy is valid

    def all(self) -> dict[str, tuple[str, int]]:
        """Every stored document with its fetch time (for ``autospace status``)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(registry_documents)).all()
        return {r.authority: (r.document, r.fetched_at) for r in rows}
