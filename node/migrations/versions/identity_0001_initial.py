"""identity: peer-token replay store and member registry documents.

Revision ID: identity_0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0001"
down_revision = None
branch_labels = ("identity",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_replay",
        sa.Column("issuer", sa.String(512), primary_key=True),
        sa.Column("jti", sa.String(128), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_identity_replay_expires_at", "identity_replay", ["expires_at"])
    op.create_table(
        "identity_registry",
        sa.Column("authority", sa.String(512), primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("fetched_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("identity_registry")
    op.drop_index("ix_identity_replay_expires_at", "identity_replay")
    op.drop_table("identity_replay")
