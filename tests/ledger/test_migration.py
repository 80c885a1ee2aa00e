"""ledger_0002 moves a log written in the one-row-per-node layout into tiles, hash for hash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text

from ledger import rfc9162
from ledger.log import Log
from node.db import make_engine
from tests.ledger import reference
from tests.ledger.memory import MemoryTree
from tests.support.databases import migrate_to

N = 1000
ORIGIN = "migration.example/log"


def _old_layout(conn, leaves: list[bytes], tamper: rfc9162.NodeId | None = None) -> int:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    log_id = conn.execute(
        text("INSERT INTO ledger_logs (origin, size, created_at) VALUES (:o, :n, :t) RETURNING id"),
        {"o": ORIGIN, "n": len(leaves), "t": now},
    ).scalar_one()
    tree = MemoryTree(leaves)
    rows = [
        {
            "l": log_id,
            "k": (node.index << 6) | node.level,
            "h": bytes(32) if node == tamper else value,
        }
        for node, value in tree.nodes.items()
    ]
    conn.execute(
        text("INSERT INTO ledger_nodes (log_id, node_key, hash) VALUES (:l, :k, :h)"), rows
    )
    return log_id


@pytest.fixture
def old_engine(db_url):
    eng = make_engine(db_url)
    migrate_to(eng, "ledger_0001")
    yield eng
    eng.dispose()


def test_upgrade_moves_every_node_and_downgrade_restores_them(old_engine):
    leaves = [f"leaf {i}".encode() for i in range(N)]
    with old_engine.begin() as conn:
        _old_layout(conn, leaves)
        before = sorted(conn.execute(text("SELECT node_key, hash FROM ledger_nodes")).all())
    migrate_to(old_engine, "ledger_0002")
    assert "ledger_nodes" not in inspect(old_engine).get_table_names()
    with old_engine.connect() as conn:
        log = Log.open(conn, ORIGIN, create=False)
        assert log.root(conn) == reference.mth(leaves)
        for m in (0, 17, 511, 999):
            assert log.inclusion_proof(conn, m, N) == reference.path(m, leaves)
        assert log.consistency_proof(conn, 300, N) == reference.proof(300, leaves)
    migrate_to(old_engine, "ledger_0001", down=True)
    with old_engine.connect() as conn:
        after = sorted(conn.execute(text("SELECT node_key, hash FROM ledger_nodes")).all())
    assert [(k, bytes(h)) for k, h in after] == [(k, bytes(h)) for k, h in before]


def test_upgrade_keeps_a_tampered_hash_as_it_was(old_engine):
    """The migration copies; it never recomputes, so earlier tampering stays detectable."""
    leaves = [f"leaf {i}".encode() for i in range(64)]
    victim = rfc9162.NodeId(3, 1)
    with old_engine.begin() as conn:
        _old_layout(conn, leaves, tamper=victim)
    migrate_to(old_engine, "ledger_0002")
    with old_engine.connect() as conn:
        log = Log.open(conn, ORIGIN, create=False)
        assert log.nodes(conn).get_nodes([victim]) == {victim: bytes(32)}
        # leaf 0's audit path uses that node: the proof no longer matches the true tree
        assert victim in rfc9162.inclusion_plan(0, 64).node_ids()
        assert log.inclusion_proof(conn, 0, 64) != reference.path(0, leaves)
        assert log.inclusion_proof(conn, 40, 64) == reference.path(40, leaves)


def test_upgrade_refuses_a_log_missing_nodes(old_engine):
    leaves = [f"leaf {i}".encode() for i in range(40)]
    with old_engine.begin() as conn:
        _old_layout(conn, leaves)
        conn.execute(text("DELETE FROM ledger_nodes WHERE node_key = :k"), {"k": (2 << 6) | 1})
    with pytest.raises(RuntimeError, match="cannot be moved to tiles"):
        migrate_to(old_engine, "ledger_0002")
    # nothing half-done: still the old layout with its nodes
    assert "ledger_tiles" not in inspect(old_engine).get_table_names()
    with old_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_nodes")).scalar_one() > 0
