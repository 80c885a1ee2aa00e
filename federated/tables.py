"""Tables of the federated package (own MetaData, migrated by the Alembic branch "federated").

``fl_runs`` / ``fl_rounds`` keep the coordinator's runs and every round's report (what the
operator console, ``autospace fl status`` and the ledger entry show); ``fl_privacy_budgets``
keeps, per agreement, the DP steps a data owner contributed so its epsilon budget survives
restarts. Plain types only, so the same schema runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()
ID = 255

runs = Table(
    "fl_runs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("task_id", String(ID), nullable=False, index=True),
    Column("task_toml", Text, nullable=False),
    Column("status", String(16), nullable=False),  # running | completed | stopped | failed
    Column("current_round", Integer, nullable=False),
    Column("weights", LargeBinary, nullable=True),  # little-endian float64 global model
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

rounds = Table(
    "fl_rounds",
    metadata,
    Column("run_id", String(ID), ForeignKey("fl_runs.id"), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # completed | aborted
    Column("invited", JSON, nullable=False),
    Column("accepted", JSON, nullable=False),
    Column("survivors", JSON, nullable=False),
    Column("dropped", JSON, nullable=False),
    Column("refusals", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("model_hash", String(64), nullable=False),
    Column("epsilon", Float, nullable=True),
    Column("abort_reason", Text, nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=False),
)

privacy_budgets = Table(
    "fl_privacy_budgets",
    metadata,
    Column("agreement_id", String(ID), primary_key=True),
    Column("task_id", String(ID), nullable=False),
    Column("noise_multiplier", Float, nullable=False),
    Column("sample_rate", Float, nullable=False),
    Column("delta", Float, nullable=False),
    Column("steps", Integer, nullable=False),
    Column("epsilon_spent", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
