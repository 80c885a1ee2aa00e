"""dataplane: the access log says whether a permitted use was given back.

A permitted access whose response delivered no byte (the source failed to open, the
connection was gone before the first chunk) no longer keeps its use: the data plane
releases it and records that here. Existing rows are accesses whose use was kept (false).

Revision ID: dataplane_0002
Revises: dataplane_0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "dataplane_0002"
down_revision = "dataplane_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataplane_access_log") as batch:
        batch.add_column(sa.Column("use_released", sa.Boolean, nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("dataplane_access_log") as batch:
        batch.drop_column("use_released")
