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
