"""The ``jti`` replay store: first use is decided by the database, across threads and processes.

The in-memory pre-check may only *refuse* early; these tests show it never accepts a
replay and never outlives the expiry the database would apply.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from connectors.identity.store import SqlReplayStore
from connectors.identity.tables import replay
from node.db import make_engine

ISSUER = "did:web:127.0.0.1%3A40000"
JTIS = [f"jti-{i}" for i in range(25)]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _race(store: SqlReplayStore, jtis: list[str], threads: int) -> list[str]:
    """``threads`` threads each try every id (in their own order); the ids each one won."""
    won: list[str] = []
    lock = threading.Lock()

    def run(seed: int) -> None:
        mine = list(jtis)
        random.Random(seed).shuffle(mine)
        for jti in mine:
            if store.remember(ISSUER, jti, 10**10):
                with lock:
                    won.append(jti)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return won


def _worker_process(url: str, start: Any, out: Any) -> None:
    """A gunicorn-worker stand-in: its own engine and store on the shared database."""
    engine = make_engine(url)
    store = SqlReplayStore(engine, clock=lambda: 0.0)
    start.wait(30)
    try:
        out.put(_race(store, JTIS, threads=4))
    except Exception as exc:  # report instead of hanging the parent on the queue
        out.put(repr(exc))
    finally:
        engine.dispose()


def race_in_processes(worker: Any, arg: str, processes: int = 3) -> list[str]:
    """Start ``processes`` spawned ``worker(arg, start, out)`` at once; the ids they won.

    spawn, not fork: forking a test process whose other threads (apps built by earlier
    tests) hold a lock hangs the child, depending on which tests ran first in the worker.
    """
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(arg, start, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(isinstance(r, list) for r in results), results
    return [jti for r in results for jti in r]


def test_processes_sharing_the_database_accept_each_jti_exactly_once(engine: Engine,
                                                                      db_url: str) -> None:
    won = race_in_processes(_worker_process, db_url)
    assert sorted(won) == sorted(JTIS)  # each id accepted once, by exactly one process
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(replay)).scalar_one() == len(JTIS)


def test_threads_sharing_one_store_accept_each_jti_exactly_once(engine: Engine) -> None:
    store = SqlReplayStore(engine, clock=lambda: 0.0)
    won = _race(store, JTIS, threads=8)
    assert sorted(won) == sorted(JTIS)


def test_a_replay_seen_by_this_process_is_refused_from_memory(engine: Engine) -> None:
    store = SqlReplayStore(engine, clock=lambda: 0.0)
    assert store.remember(ISSUER, "j", 100)
    with engine.begin() as conn:  # the row vanishes: only the memory can still refuse
        conn.execute(delete(replay))
    assert not store.remember(ISSUER, "j", 100)
    # another worker has no memory of it and asks the database, which is the authority
    assert SqlReplayStore(engine, clock=lambda: 0.0).remember(ISSUER, "j", 100)


def test_memory_never_refuses_after_the_id_expired(engine: Engine) -> None:
    clock = Clock(0.0)
    store = SqlReplayStore(engine, clock=clock)
    assert store.remember(ISSUER, "j", 100)
    assert not store.remember(ISSUER, "j", 100)
    clock.now = 101.0
    assert store.purge() == 1  # as the database forgets it, so does the memory
    assert store.remember(ISSUER, "j", 300)


def test_memory_is_bounded_and_the_database_still_decides(engine: Engine) -> None:
    store = SqlReplayStore(engine, clock=lambda: 0.0, seen_capacity=1)
    assert store.remember(ISSUER, "j1", 100)
    assert store.remember(ISSUER, "j2", 100)  # pushes j1 out of memory
    assert not store.remember(ISSUER, "j1", 100)  # refused by the database
    assert not store.remember(ISSUER, "j2", 100)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(replay)).scalar_one() == 2


def test_lost_postgres_connection_fails_closed_then_recovers(engine: Engine) -> None:
    """A dead dedicated connection answers 503 (OperationalError) once, then is replaced."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from tests.support.databases import is_postgres

    if not is_postgres():
        pytest.skip("PostgreSQL connection of the replay store")
    store = SqlReplayStore(engine, clock=lambda: 0.0)
    assert store.remember(ISSUER, "j1", 100)
    pid = store._pg.info.backend_pid  # the store's own session, as an operator would find it
    with engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(OperationalError):
        store.remember(ISSUER, "j2", 100)
    assert store.remember(ISSUER, "j2", 100)  # nothing was recorded by the failure
    assert not store.remember(ISSUER, "j1", 100)
    store.close()
    assert not SqlReplayStore(engine, clock=lambda: 0.0).remember(ISSUER, "j2", 100)
