"""identity_0002 re-keys the replay store by expiry and keeps every id seen before it."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from connectors.identity.store import SqlReplayStore
from node.db import make_engine
from tests.support.databases import migrate_to

ISSUER = "did:web:a.example"


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    migrate_to(eng, "identity_0001")
    yield eng
    eng.dispose()


def test_upgrade_keeps_seen_ids_and_drops_the_expiry_index(engine):
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO identity_replay (issuer, jti, expires_at) VALUES (:i, :j, :e)"),
            [{"i": ISSUER, "j": f"j{n}", "e": 1000 + n} for n in range(50)],
        )
    migrate_to(engine, "identity_0002")
    insp = inspect(engine)
    assert insp.get_pk_constraint("identity_replay")["constrained_columns"] == [
        "expires_at",
        "issuer",
        "jti",
    ]
    assert insp.get_indexes("identity_replay") == []
    store = SqlReplayStore(engine, clock=lambda: 0.0)
    try:
        assert not store.remember(ISSUER, "j7", 1007)  # seen before the upgrade: refused
        assert store.remember(ISSUER, "new", 5000)
        assert store.purge(now=1025) == 25  # a range delete on the key's prefix
    finally:
        store.close()
    migrate_to(engine, "identity_0001", down=True)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM identity_replay")).scalar_one()
    assert rows == 26  # j25..j49 and "new"
    assert {i["name"] for i in inspect(engine).get_indexes("identity_replay")} == {
        "ix_identity_replay_expires_at"
    }
