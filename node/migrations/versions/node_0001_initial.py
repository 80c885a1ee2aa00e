"""node: management API keys.

Revision ID: node_0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "node_0001"
down_revision = None
branch_labels = ("node",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("node_api_keys")
