"""federated: FL runs, rounds, and per-agreement privacy budgets.

Revision ID: federated_0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "federated_0001"
down_revision = None
branch_labels = ("federated",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fl_runs",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("task_id", sa.String(255), nullable=False, index=True),
        sa.Column("task_toml", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_round", sa.Integer, nullable=False),
        sa.Column("weights", sa.LargeBinary, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "fl_rounds",
        sa.Column("run_id", sa.String(255), sa.ForeignKey("fl_runs.id"), primary_key=True),
        sa.Column("round", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("invited", sa.JSON, nullable=False),
        sa.Column("accepted", sa.JSON, nullable=False),
        sa.Column("survivors", sa.JSON, nullable=False),
        sa.Column("dropped", sa.JSON, nullable=False),
        sa.Column("refusals", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("model_hash", sa.String(64), nullable=False),
        sa.Column("epsilon", sa.Float, nullable=True),
        sa.Column("abort_reason", sa.Text, nullable=True),
        sa.Column("finished_at", TZ, nullable=False),
    )
    op.create_table(
        "fl_privacy_budgets",
        sa.Column("agreement_id", sa.String(255), primary_key=True),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("noise_multiplier", sa.Float, nullable=False),
        sa.Column("sample_rate", sa.Float, nullable=False),
        sa.Column("delta", sa.Float, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("epsilon_spent", sa.Float, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fl_privacy_budgets")
    op.drop_table("fl_rounds")
    op.drop_table("fl_runs")
