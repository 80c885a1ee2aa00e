"""identity: key the replay store by (expires_at, issuer, jti), without a second index.

Random token ids as the key's head spread every insert over the whole table, a page write
each, plus a second B-tree for purging by expiry. With expiry first, inserts land on the
right edge of one B-tree and purging is a range delete of the key's prefix. Rows are
copied, so ids seen before the upgrade are still refused after it.

Revision ID: identity_0002
Revises: identity_0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = None


def _move(new_columns: list[sa.Column], *, indexed: bool, **table_kw: object) -> None:
    op.create_table("identity_replay_next", *new_columns, **table_kw)
    op.execute(
        "INSERT INTO identity_replay_next (expires_at, issuer, jti) "
        "SELECT expires_at, issuer, jti FROM identity_replay"
    )
    op.drop_table("identity_replay")
    op.rename_table("identity_replay_next", "identity_replay")
    if indexed:
        op.create_index("ix_identity_replay_expires_at", "identity_replay", ["expires_at"])


def upgrade() -> None:
    _move(
        [
            sa.Column("expires_at", sa.BigInteger, primary_key=True),
            sa.Column("issuer", sa.String(512), primary_key=True),
            sa.Column("jti", sa.String(128), primary_key=True),
        ],
        indexed=False,
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    # Two tokens of one issuer may share a jti under the new key; keep one row for each.
    op.execute(
        "DELETE FROM identity_replay WHERE EXISTS (SELECT 1 FROM identity_replay AS o "
        "WHERE o.issuer = identity_replay.issuer AND o.jti = identity_replay.jti "
        "AND o.expires_at > identity_replay.expires_at)"
    )
    _move(
        [
            sa.Column("issuer", sa.String(512), primary_key=True),
            sa.Column("jti", sa.String(128), primary_key=True),
            sa.Column("expires_at", sa.BigInteger, nullable=False),
        ],
        indexed=True,
    )
