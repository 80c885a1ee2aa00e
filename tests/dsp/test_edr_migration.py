"""connectors_0002 marks the negotiations whose EDR transfer was still to be started."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, text

from connectors import tables
from node.db import make_engine
from tests.support.databases import migrate_to


def test_upgrade_marks_waiting_edr_requests(db_url):
    engine = make_engine(db_url)
    try:
        migrate_to(engine, "connectors_0001")
        now = datetime(2026, 11, 1, tzinfo=UTC)
        base = {"role": "consumer", "state": "REQUESTED", "counter_party_id": "BPN-P",
                "counter_party_address": "http://127.0.0.1:1/protocol", "created_at": now,
                "updated_at": now, "version": 1}
        extras = {
            "waiting": {"edr": {"request": {"transferType": "HttpData-PULL"}}},
            "started": {"edr": {"request": {}, "transferId": "t-1"}},
            "plain": {},
        }
        with engine.begin() as conn:
            for ident, extra in extras.items():
                conn.execute(insert(tables.contract_negotiations).values(
                    id=ident, extra=extra, **base))
        migrate_to(engine, "connectors_0002")
        with engine.connect() as conn:
            marked = conn.execute(text("SELECT negotiation_id FROM connector_edr_pending"))
            assert [r[0] for r in marked] == ["waiting"]
    finally:
        engine.dispose()
