"""policies: agreements under usage control, counters, duties, export log.

Revision ID: policies_0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "policies_0001"
down_revision = None
branch_labels = ("policies",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "policy_agreements",
        sa.Column("agreement_id", sa.String(512), primary_key=True),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("signed_at", TZ, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lapsed_reason", sa.Text, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "policy_usage_counters",
        sa.Column("agreement_id", sa.String(512), primary_key=True),
        sa.Column("target", sa.String(512), primary_key=True),
        sa.Column("uses", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "policy_duties",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agreement_id", sa.String(512), nullable=False),
        sa.Column("duty_id", sa.String(512), nullable=False),
        sa.Column("action", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("deadline", TZ, nullable=True),
        sa.Column("attestation", sa.Text, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("agreement_id", "duty_id", name="uq_policy_duties_agreement_duty"),
    )
    op.create_table(
        "policy_export_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agreement_id", sa.String(512), nullable=True),
        sa.Column("asset", sa.String(512), nullable=True),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("home_region", sa.String(64), nullable=True),
        sa.Column("recipient_region", sa.String(64), nullable=True),
        sa.Column("recipient", sa.String(512), nullable=True),
        sa.Column("action", sa.String(255), nullable=True),
        sa.Column("approval", sa.String(512), nullable=True),
        sa.Column("permitted", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("policy", sa.String(512), nullable=True),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("decided_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "policy_export_log",
        "policy_duties",
        "policy_usage_counters",
        "policy_agreements",
    ):
        op.drop_table(name)
