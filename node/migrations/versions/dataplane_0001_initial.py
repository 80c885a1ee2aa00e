"""dataplane: refresh-token generations, push jobs, access log.

Revision ID: dataplane_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "dataplane_0001"
down_revision = None
branch_labels = ("dataplane",)
depends_on = None

ID = 255
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dataplane_refresh_generations",
        sa.Column("transfer_id", sa.String(ID), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "dataplane_pushes",
        sa.Column("transfer_id", sa.String(ID), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("leased_until", sa.BigInteger, nullable=True),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("bytes", sa.BigInteger, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "dataplane_access_log",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("transfer_id", sa.String(ID), nullable=True),
        sa.Column("agreement_id", sa.String(ID), nullable=True),
        sa.Column("asset_id", sa.String(ID), nullable=True),
        sa.Column("consumer_id", sa.String(512), nullable=True),
        sa.Column("purpose", sa.String(512), nullable=True),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(1024), nullable=True),
        sa.Column("ledger_record_id", sa.String(512), nullable=True),
    )
    op.create_index("ix_dataplane_access_log_transfer", "dataplane_access_log", ["transfer_id"])
    op.create_index("ix_dataplane_access_log_agreement", "dataplane_access_log", ["agreement_id"])


def downgrade() -> None:
    op.drop_table("dataplane_access_log")
    op.drop_table("dataplane_pushes")
    op.drop_table("dataplane_refresh_generations")
