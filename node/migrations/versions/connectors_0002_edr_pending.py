"""connectors: index of EDR requests waiting for their negotiation to finish.

The dispatcher used to read every FINALIZED negotiation after each delivery round to find
those started by POST /edrs, a cost that grew with the node's history. Negotiations that
carry an EDR request without a started transfer are marked here by the upgrade.

Revision ID: connectors_0002
Revises: connectors_0001
Create Date: 2026-11-22
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "connectors_0002"
down_revision = "connectors_0001"
branch_labels = None
depends_on = None

ID = 255


def upgrade() -> None:
    pending = op.create_table(
        "connector_edr_pending",
        sa.Column("negotiation_id", sa.String(ID), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, extra FROM dsp_contract_negotiations"))
    now = datetime.now(UTC)
    marked = []
    for negotiation_id, extra in rows:
        value = json.loads(extra) if isinstance(extra, str) else extra
        edr = value.get("edr") if isinstance(value, dict) else None
        if isinstance(edr, dict) and not edr.get("transferId"):
            marked.append({"negotiation_id": negotiation_id, "created_at": now})
    if marked:
        op.bulk_insert(pending, marked)


def downgrade() -> None:
    op.drop_table("connector_edr_pending")
