"""dataplane_0002 adds ``use_released`` to the access log; existing rows kept their use."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from node.db import make_engine
from tests.support.databases import migrate_to


def test_upgrade_marks_existing_accesses_as_kept_and_downgrade_drops_the_column(db_url):
    engine = make_engine(db_url)
    try:
        migrate_to(engine, "dataplane_0001")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO dataplane_access_log (at, kind, transfer_id, decision, status, "
                "bytes) VALUES (:at, 'pull', 't-1', 'permit', 'complete', 10)"),
                {"at": datetime(2026, 11, 1, tzinfo=UTC)})
        migrate_to(engine, "dataplane_0002")
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT transfer_id, use_released FROM dataplane_access_log")).all()
        assert [(r[0], bool(r[1])) for r in rows] == [("t-1", False)]
        with engine.begin() as conn:  # new rows default to kept as well
            conn.execute(text(
                "INSERT INTO dataplane_access_log (at, kind, decision, status, bytes) "
                "VALUES (:at, 'pull', 'deny', 'denied', 0)"),
                {"at": datetime(2026, 11, 2, tzinfo=UTC)})
            assert conn.execute(text(
                "SELECT COUNT(*) FROM dataplane_access_log WHERE use_released")).scalar() == 0
        migrate_to(engine, "dataplane_0001", down=True)
        columns = {c["name"] for c in inspect(engine).get_columns("dataplane_access_log")}
        assert "use_released" not in columns and "bytes" in columns
    finally:
        engine.dispose()
