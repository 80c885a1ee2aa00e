"""The engine and the migration chain work on the backend under test."""

from sqlalchemy import inspect, text

from node.db import all_metadata, make_engine, migrate


def test_engine_round_trip(db_url):
    eng = make_engine(db_url)
    with eng.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
    eng.dispose()


def test_migrations_create_every_declared_table(db_url):
    eng = make_engine(db_url)
    migrate(eng)
    tables = set(inspect(eng).get_table_names())
    declared = {t for md in all_metadata() for t in md.tables}
    assert declared <= tables, f"tables without a migration: {sorted(declared - tables)}"
    migrate(eng)  # idempotent: a second run on an up-to-date database changes nothing
    eng.dispose()


def test_postgresql_lock_waits_are_bounded(db_url):
    """A statement blocked by another transaction's lock fails after the lock timeout (the
    request answers 503) instead of hanging a worker thread."""
    import time

    import pytest
    from sqlalchemy.exc import OperationalError

    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL lock timeout (SQLite has its busy timeout)")
    eng = make_engine(db_url, lock_timeout_ms=300)
    try:
        with eng.begin() as conn:
            conn.execute(text("CREATE TABLE lock_probe (x int)"))
        with eng.connect() as conn:  # the setting survives the pool's rollback on return
            conn.rollback()
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "300ms"
        holder = eng.connect()
        try:
            holder.execute(text("LOCK TABLE lock_probe IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            with pytest.raises(OperationalError, match="lock timeout"), eng.connect() as conn:
                conn.execute(text("SELECT * FROM lock_probe")).all()
            assert time.monotonic() - started < 5
        finally:
            holder.rollback()
            holder.close()
    finally:
        eng.dispose()
