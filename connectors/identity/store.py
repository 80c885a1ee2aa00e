"""SQL implementations of the verifier's stores (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from connectors.identity.purge import PurgeSchedule
from connectors.identity.tables import registry_documents, replay

PURGE_EVERY = 60.0  # seconds between opportunistic purges of expired token ids
SQLITE_WRITE_PATIENCE = 5.0  # seconds to keep retrying a busy SQLite before giving up (503)
SEEN_CAPACITY = 16384  # token ids per process refused from memory (a few MB at most)
# Built once: constructing ``insert().values(...)`` per call costs ~4x the database work.
_INSERT_REPLAY = insert(replay)
_SQLITE_INSERT = "INSERT INTO identity_replay (issuer, jti, expires_at) VALUES (?, ?, ?)"
# One statement, one round trip: 0 rows when the id is already stored.
_PG_INSERT = ("INSERT INTO identity_replay (issuer, jti, expires_at) VALUES (%s, %s, %s) "
              "ON CONFLICT (expires_at, issuer, jti) DO NOTHING")


class SqlReplayStore:
    """``jti`` replay store shared by every process using the same database.

    The primary key makes the check-and-insert atomic: a second insert of the same
    ``(issuer, jti)`` fails, whichever process or worker tries it. Database errors
    propagate (the HTTP layer answers 503), so a token is never accepted unrecorded.
    Ids this process has already seen are refused from memory without a round trip
    until they expire (a replay can only be *refused* early; first use is always decided
    by the database).
    """

    # No horizon: after a host crash the database may forget only its last commits (under a
    # second, see ``_insert``), an accepted risk documented in docs/node.md.
    horizon = 0.0

    def __init__(self, engine: Engine, *, clock: Callable[[], float],
                 sqlite_patience: float = SQLITE_WRITE_PATIENCE,
                 seen_capacity: int = SEEN_CAPACITY) -> None:
        self._engine = engine
        self._clock = clock
        self._patience = sqlite_patience
        self._purges = PurgeSchedule(PURGE_EVERY, clock, self.purge)
        self._async_commit = engine.dialect.name == "postgresql"
        self._sqlite_path: str | None = None
        self._write_lock = threading.Lock()
        self._raw: sqlite3.Connection | None = None
        self._pg: Any = None  # psycopg.Connection of this process (PostgreSQL fast path)
        self._pid = 0
        self._pg_fast = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        self._seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._seen_capacity = seen_capacity
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            # The hottest write of the node. SQLite's busy handler waits for the writer
            # lock by sleeping whole milliseconds. A lock across processes (flock) around
            # the insert is held while its holder waits to get its GIL back after the C
            # call, so every worker queues behind that wait. Instead: one autocommit
            # connection per process (threads queue on a mutex; they share the GIL anyway,
            # and one connection keeps its page cache warmer than one per thread) that fails
            # at once when another process writes (SQLite holds its writer lock only inside
            # the C call), and a retry after a few microseconds.
            self._sqlite_path = engine.url.database

    def remember(self, issuer: str, jti: str, expires_at: int) -> bool:
        key = (issuer, jti, expires_at)  # the database's key (see tables.replay)
        if key in self._seen and expires_at >= self._clock():
            return False  # this process stored or saw it: a replay, no database needed
        if self._pg_fast:
            with self._write_lock:
                inserted = self._insert_pg(issuer, jti, expires_at)
        elif self._sqlite_path is None:
            inserted = self._insert(issuer, jti, expires_at)
        else:
            with self._write_lock:
                inserted = self._insert_sqlite(issuer, jti, expires_at)
        self._note(key)
        if inserted:
            self._purges.maybe()
        return inserted

    def _note(self, key: tuple[str, str, int]) -> None:
        """Remember ``key`` (it carries its expiry) in memory; bounded, oldest out first."""
        seen = self._seen
        seen[key] = None
        if len(seen) > self._seen_capacity:
            with contextlib.suppress(KeyError):  # emptied by a concurrent call
                seen.popitem(last=False)

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

    def _insert_pg(self, issuer: str, jti: str, expires_at: int) -> bool:
        """Insert through this process's own autocommit connection (not the pool).

        Through SQLAlchemy the same insert costs ~10x the CPU: checkout, BEGIN, SET LOCAL,
        INSERT, COMMIT are four round trips; here it is one prepared statement. The
        connection never takes part in other work, so ``synchronous_commit`` is set for
        its session (see :meth:`_insert` for why that is acceptable).
        """
        params = (issuer, jti, expires_at)
        try:
            conn = self._pg
            if conn is None or self._pid != os.getpid() or conn.closed:
                conn = self._pg = None
                conn = _pg_connection(self._engine)
                self._pg, self._pid = conn, os.getpid()
            return conn.execute(_PG_INSERT, params).rowcount == 1
        except Exception as exc:  # psycopg.Error and friends: unknown outcome -> 503
            self._drop_pg()
            raise OperationalError(_PG_INSERT, params, exc) from None

    def _drop_pg(self) -> None:
        """Forget a connection in an unknown state; the next call opens a new one."""
        conn, self._pg = self._pg, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        """Close this process's dedicated connections (the engine's pool is not touched)."""
        with self._write_lock:
            self._drop_pg()
            raw, self._raw = self._raw, None
            if raw is not None and self._pid == os.getpid():
                raw.close()

    def _insert_sqlite(self, issuer: str, jti: str, expires_at: int) -> bool:
        raw = self._raw
        if raw is None or self._pid != os.getpid():  # first use here (never share across fork)
            raw = self._raw = _fail_fast_connection(self._sqlite_path or "")
            self._pid = os.getpid()
        deadline = time.monotonic() + self._patience
        delay = 20e-6
        params = (issuer, jti, expires_at)
        while True:
            try:
                raw.execute(_SQLITE_INSERT, params)  # autocommit: one atomic statement
                return True
            except sqlite3.IntegrityError:
                return False
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() >= deadline:
                    # as SQLAlchemy would raise it, so the HTTP layer answers 503
                    raise OperationalError(_SQLITE_INSERT, params, exc) from None
            # another writer holds the database for a few microseconds: back off, jittered
            # so that waiting workers do not retry in lockstep
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1e-3)

    def purge(self, now: float | None = None) -> int:
        """Delete token ids whose tokens have expired; return how many."""
        cutoff = int(self._clock() if now is None else now)
        with self._engine.begin() as conn:
            return conn.execute(delete(replay).where(replay.c.expires_at < cutoff)).rowcount or 0


def _pg_connection(engine: Engine) -> Any:
    """A new autocommit psycopg connection with the engine's URL and options."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    conn = engine.dialect.connect(*cargs, **cparams)
    conn.autocommit = True
    conn.execute("SET synchronous_commit TO OFF")
    return conn


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
