"""Persistence of runs, rounds and budgets on the backend under test (SQLite or PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import inspect

from federated import store
from federated.coordinator import RoundReport
from federated.privacy import PrivacyAccountant


def test_migration_creates_the_federated_tables(migrated_engine) -> None:
    names = set(inspect(migrated_engine).get_table_names())
    assert {"fl_runs", "fl_rounds", "fl_privacy_budgets"} <= names


def test_runs_rounds_and_budgets_round_trip(migrated_engine) -> None:
    report = RoundReport(1, "completed", ("a", "b", "c"), ("a", "b", "c"), {"d": "no"},
                         ("a", "b"), ("c",), {"eval_accuracy": 0.8}, "ab" * 32, 1.5, None)
    with migrated_engine.begin() as conn:
        store.create_run(conn, "run-1", "task", "[task]\n")
        store.save_round(conn, "run-1", report, np.arange(3.0))
        aborted = RoundReport(2, "aborted", ("a",), abort_reason="only 1 of 3 accepted")
        aborted.model_hash = "cd" * 32
        store.save_round(conn, "run-1", aborted, np.arange(3.0))
        store.finish_run(conn, "run-1", "completed")
    with migrated_engine.connect() as conn:
        rows = store.run_rounds(conn, "run-1")
    assert [r["round"] for r in rows] == [1, 2]
    assert rows[0]["refusals"] == {"d": "no"} and rows[0]["metrics"]["eval_accuracy"] == 0.8
    assert rows[1]["abort_reason"] == "only 1 of 3 accepted" and rows[1]["epsilon"] is None

    acc = PrivacyAccountant(1.1, 1.0, 2)
    with migrated_engine.begin() as conn:
        assert store.load_accountant(conn, "agr-1") is None
        first = store.save_accountant(conn, "agr-1", "task", acc, 1e-5)
        acc.record()
        second = store.save_accountant(conn, "agr-1", "task", acc, 1e-5)
    assert second > first
    with migrated_engine.connect() as conn:
        back = store.load_accountant(conn, "agr-1")
    assert back == PrivacyAccountant(1.1, 1.0, 3)
    assert back.epsilon(1e-5) == pytest.approx(second)
