"""Persistence of runs, round reports and privacy budgets (SQLAlchemy Core, any engine).

Functions take a ``Connection`` so the caller (the node) owns transactions; they never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from federated.coordinator import RoundReport
from federated.privacy import PrivacyAccountant
from federated.tables import privacy_budgets, rounds, runs

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def create_run(conn: Connection, run_id: str, task_id: str, task_toml: str,
               clock: Clock = _now) -> None:
    """Register a new run in state ``running``."""
    now = clock()
    conn.execute(insert(runs).values(id=run_id, task_id=task_id, task_toml=task_toml,
                                     status="running", current_round=0, weights=None,
                                     created_at=now, updated_at=now))


def save_round(conn: Connection, run_id: str, report: RoundReport, weights: np.ndarray,
               clock: Clock = _now) -> None:
    """Store a round report and the run's global model after it."""
    now = clock()
    conn.execute(insert(rounds).values(
        run_id=run_id, round=report.round, status=report.status,
        invited=list(report.invited), accepted=list(report.accepted),
        survivors=list(report.survivors), dropped=list(report.dropped),
        refusals=dict(report.refusals), metrics=dict(report.metrics),
        model_hash=report.model_hash, epsilon=report.epsilon,
        abort_reason=report.abort_reason, finished_at=now))
    conn.execute(update(runs).where(runs.c.id == run_id).values(
        current_round=report.round, weights=np.asarray(weights, dtype="<f8").tobytes(),
        updated_at=now))


def finish_run(conn: Connection, run_id: str, status: str, clock: Clock = _now) -> None:
    """Mark a run completed, stopped (early stopping) or failed."""
    conn.execute(update(runs).where(runs.c.id == run_id).values(status=status,
                                                                 updated_at=clock()))


def run_rounds(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Every stored round of a run, in order."""
    rows = conn.execute(select(rounds).where(rounds.c.run_id == run_id)
                        .order_by(rounds.c.round)).mappings()
    return [dict(r) for r in rows]


def load_accountant(conn: Connection, agreement_id: str) -> PrivacyAccountant | None:
    """The accountant of an agreement's budget, or None if nothing was spent yet."""
    row = conn.execute(select(privacy_budgets).where(
        privacy_budgets.c.agreement_id == agreement_id)).mappings().first()
    if row is None:
        return None
    return PrivacyAccountant(row["noise_multiplier"], row["sample_rate"], row["steps"])


def save_accountant(conn: Connection, agreement_id: str, task_id: str,
                    accountant: PrivacyAccountant, delta: float, clock: Clock = _now) -> float:
    """Upsert the agreement's budget; returns the epsilon spent at ``delta``."""
    spent = accountant.epsilon(delta)
    values = dict(task_id=task_id, noise_multiplier=accountant.noise_multiplier,
                  sample_rate=accountant.sample_rate, delta=delta, steps=accountant.steps,
                  epsilon_spent=spent, updated_at=clock())
    done = conn.execute(update(privacy_budgets).where(
        privacy_budgets.c.agreement_id == agreement_id).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(privacy_budgets).values(agreement_id=agreement_id, **values))
    return spent
