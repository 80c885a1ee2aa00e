"""The persisted log: roots and proofs match the reference, appends are atomic and serialised."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text

from ledger import rfc9162, tables, tiles
from ledger.errors import NotFoundError, RecordError, StorageError
from ledger.log import Log, NewRecord, durable_transaction
from tests.ledger import reference
from tests.ledger.conftest import ORIGIN, agreement


def _leaves(log: Log, conn, n: int) -> list[bytes]:
    return [log.entry(conn, i).leaf_data() for i in range(n)]


def test_append_and_prove_against_reference(engine, log):
    with engine.begin() as conn:
        for i in range(5):
            log.append(conn, "contract-agreement", agreement(i), record_id=f"agr-{i}")
        log.append_many(conn, [NewRecord("contract-agreement", agreement(i)) for i in range(5, 37)])
    with engine.connect() as conn:
        assert log.size(conn) == 37
        leaves = _leaves(log, conn, 37)
        for n in (1, 2, 7, 16, 37):
            assert log.root(conn, n) == reference.mth(leaves[:n])
            for m in (0, n // 2, n - 1):
                assert log.inclusion_proof(conn, m, n) == reference.path(m, leaves[:n])
            for m in range(1, n):
                assert log.consistency_proof(conn, m, n) == reference.proof(m, leaves[:n])
        # storage holds every perfect subtree once, nothing else, in ceil(37/16) + 1 tiles
        stored = [
            tiles.Tile(k, w, h)
            for k, w, h in conn.execute(
                select(tables.tiles.c.tile_key, tables.tiles.c.width, tables.tiles.c.hashes)
            )
        ]
        assert len(stored) == 4
        held = dict(tiles.unpack(stored))
        assert set(held) == {rfc9162.NodeId(lvl, i) for lvl in range(6) for i in range(37 >> lvl)}
        assert all(held[rfc9162.NodeId(0, i)] == rfc9162.leaf_hash(leaves[i]) for i in range(37))


def test_leaf_is_salted_canonical_json(engine, log):
    import rfc8785

    with engine.begin() as conn:
        e1 = log.append(conn, "contract-agreement", agreement(1))
        e2 = log.append(conn, "contract-agreement", agreement(1) | {})
    assert len(e1.salt) == 16 and e1.salt != e2.salt
    assert e1.leaf_hash() != e2.leaf_hash()  # same record, different salt
    import json

    expected = rfc8785.dumps(
        {"record": json.loads(e1.record_json), "salt": e1.salt.hex(), "type": "contract-agreement"}
    )
    assert e1.leaf_data() == expected


def test_append_joins_callers_transaction(engine, log):
    with pytest.raises(RuntimeError), engine.begin() as conn:
        log.append(conn, "contract-agreement", agreement(1), record_id="gone")
        raise RuntimeError("business step failed after logging")
    with engine.connect() as conn:
        assert log.size(conn) == 0
        with pytest.raises(NotFoundError):
            log.entry_by_record_id(conn, "gone")
        assert conn.execute(select(func.count()).select_from(tables.tiles)).scalar_one() == 0


def test_invalid_record_appends_nothing(engine, log):
    with engine.begin() as conn:
        bad = agreement(2)
        del bad["consumerId"]
        with pytest.raises(RecordError, match="consumerId"):
            log.append_many(
                conn,
                [
                    NewRecord("contract-agreement", agreement(1)),
                    NewRecord("contract-agreement", bad),
                ],
            )
        assert log.size(conn) == 0


def test_duplicate_record_id_rejected(engine, log):
    with engine.begin() as conn:
        log.append(conn, "contract-agreement", agreement(1), record_id="x")
    with pytest.raises(StorageError), engine.begin() as conn:
        log.append(conn, "contract-agreement", agreement(2), record_id="x")
    with engine.connect() as conn:
        assert log.size(conn) == 1


def test_bad_sizes_are_errors(engine, log):
    with engine.begin() as conn:
        log.append_many(conn, [NewRecord("contract-agreement", agreement(i)) for i in range(3)])
    with engine.connect() as conn:
        with pytest.raises(NotFoundError):
            log.inclusion_proof(conn, 0, 4)
        with pytest.raises(NotFoundError):
            log.inclusion_proof(conn, 1 << 62, 3)
        with pytest.raises(NotFoundError):
            log.consistency_proof(conn, 1, 1 << 40)
        with pytest.raises(NotFoundError):
            log.root(conn, -1)
        assert log.root(conn, 0) == rfc9162.empty_root()


def test_concurrent_appenders_serialise(engine, log):
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(10):
                with engine.begin() as conn:
                    log.append(
                        conn, "contract-agreement", agreement(w * 100 + i), record_id=f"w{w}-{i}"
                    )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with engine.connect() as conn:
        assert log.size(conn) == 40
        leaves = _leaves(log, conn, 40)
        assert log.root(conn) == reference.mth(leaves)
        indices = conn.execute(select(tables.entries.c.leaf_index).order_by("leaf_index")).scalars()
        assert list(indices) == list(range(40))


def test_two_logs_in_one_database(engine, log):
    with engine.begin() as conn:
        other = Log.open(conn, "ledger.test.example/other")
        log.append(conn, "contract-agreement", agreement(1))
        other.append(conn, "contract-agreement", agreement(1))
        other.append(conn, "contract-agreement", agreement(2))
        assert (log.size(conn), other.size(conn)) == (1, 2)
        assert Log.open(conn, ORIGIN).log_id == log.log_id
        with pytest.raises(NotFoundError):
            Log.open(conn, "nope.example/x", create=False)


def test_works_on_migrated_schema(migrated_engine):
    with migrated_engine.begin() as conn:
        log = Log.open(conn, ORIGIN)
        log.append_many(conn, [NewRecord("contract-agreement", agreement(i)) for i in range(9)])
        assert log.root(conn) == reference.mth(_leaves(log, conn, 9))
        conn.execute(text("select 1"))


def _synchronous(conn) -> int | None:
    if conn.dialect.name != "sqlite":
        return None
    return conn.exec_driver_sql("PRAGMA synchronous").scalar_one()


def test_checkpoints_are_signed_in_durable_transactions(engine, log, signer):
    """A published checkpoint must outlive a power cut: its commit syncs the WAL (FULL),
    and the pooled connection goes back to the node's NORMAL afterwards, even on failure."""
    with engine.connect() as conn:
        normal = _synchronous(conn)
        raw = conn.connection.dbapi_connection
    with durable_transaction(engine) as conn:
        assert conn.connection.dbapi_connection is raw  # the pooled connection, switched
        assert _synchronous(conn) in (None, 2)
        log.append(conn, "contract-agreement", agreement(1), record_id="agr-1")
        log.sign_checkpoint(conn, signer)
    with pytest.raises(RuntimeError), durable_transaction(engine) as conn:
        log.append(conn, "contract-agreement", agreement(2), record_id="agr-2")
        raise RuntimeError("failed before commit")
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is raw
        assert _synchronous(conn) == normal
        assert log.size(conn) == 1
        assert log.latest_checkpoint(conn).size == 1
