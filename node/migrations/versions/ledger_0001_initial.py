"""ledger: transparency log, checkpoints, anchors, EPCIS index.

Revision ID: ledger_0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "ledger_0001"
down_revision = None
branch_labels = ("ledger",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ledger_logs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("origin", sa.String(255), nullable=False, unique=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "ledger_nodes",
        sa.Column("log_id", sa.Integer, sa.ForeignKey("ledger_logs.id"), primary_key=True),
        sa.Column("node_key", sa.BigInteger, primary_key=True),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ledger_entries",
        sa.Column("log_id", sa.Integer, sa.ForeignKey("ledger_logs.id"), primary_key=True),
        sa.Column("leaf_index", sa.BigInteger, primary_key=True),
        sa.Column("record_id", sa.String(512), nullable=False),
        sa.Column("record_type", sa.String(64), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("salt", sa.LargeBinary(16), nullable=False),
        sa.Column("logged_at", TZ, nullable=False),
        sa.UniqueConstraint("log_id", "record_id", name="uq_ledger_entries_record"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("log_id", sa.Integer, sa.ForeignKey("ledger_logs.id"), primary_key=True),
        sa.Column("tree_size", sa.BigInteger, primary_key=True),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("signed_at", TZ, nullable=False),
    )
    op.create_table(
        "ledger_anchors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("log_id", sa.Integer, sa.ForeignKey("ledger_logs.id"), nullable=False),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("contract", sa.String(42), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("tx_hash", sa.String(66)),
        sa.Column("nonce", sa.BigInteger),
        sa.Column("block_number", sa.BigInteger),
        sa.Column("block_hash", sa.String(66)),
        sa.Column("gas_used", sa.BigInteger),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("submitted_at", TZ),
        sa.Column("confirmed_at", TZ),
        sa.Column("next_attempt_at", TZ),
    )
    op.create_index("ix_ledger_anchors_log_state", "ledger_anchors", ["log_id", "state"])
    op.create_table(
        "ledger_epcis_events",
        sa.Column("log_id", sa.Integer, sa.ForeignKey("ledger_logs.id"), primary_key=True),
        sa.Column("event_id", sa.String(512), primary_key=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("event_time", TZ, nullable=False),
        sa.Column("leaf_index", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ledger_epcis_events_time", "ledger_epcis_events", ["log_id", "event_time"])
    op.create_table(
        "ledger_epcis_identifiers",
        sa.Column("log_id", sa.Integer, sa.ForeignKey("ledger_logs.id"), primary_key=True),
        sa.Column("event_id", sa.String(512), primary_key=True),
        sa.Column("identifier", sa.String(512), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
    )
    op.create_index(
        "ix_ledger_epcis_identifiers_id", "ledger_epcis_identifiers", ["log_id", "identifier"]
    )


def downgrade() -> None:
    for name in (
        "ledger_epcis_identifiers",
        "ledger_epcis_events",
        "ledger_anchors",
        "ledger_checkpoints",
        "ledger_entries",
        "ledger_nodes",
        "ledger_logs",
    ):
        op.drop_table(name)
