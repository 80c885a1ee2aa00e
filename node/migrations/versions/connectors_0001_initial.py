"""connectors: assets, policy and contract definitions, DSP processes, outbox.

Revision ID: connectors_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "connectors_0001"
down_revision = None
branch_labels = ("connectors",)
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = 255


def _stamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "connector_assets",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("private_properties", JSON, nullable=False),
        sa.Column("data_address", JSON, nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("home_region", sa.String(64), nullable=True),
        *_stamps(),
        sa.CheckConstraint(
            "classification IN ('general', 'important', 'core')",
            name="ck_connector_assets_classification",
        ),
    )
    op.create_table(
        "connector_policy_definitions",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("policy", JSON, nullable=False),
        sa.Column("private_properties", JSON, nullable=False),
        *_stamps(),
    )
    op.create_table(
        "connector_contract_definitions",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("access_policy_id", sa.String(ID), nullable=False),
        sa.Column("contract_policy_id", sa.String(ID), nullable=False),
        sa.Column("assets_selector", JSON, nullable=False),
        *_stamps(),
    )
    op.create_table(
        "dsp_contract_negotiations",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("counter_party_id", sa.String(512), nullable=False),
        sa.Column("counter_party_address", sa.Text, nullable=False),
        sa.Column("consumer_pid", sa.String(ID), nullable=True),
        sa.Column("provider_pid", sa.String(ID), nullable=True),
        sa.Column("dataset_id", sa.String(ID), nullable=True),
        sa.Column("offer", JSON, nullable=True),
        sa.Column("contract_definition_id", sa.String(ID), nullable=True),
        sa.Column("agreement_id", sa.String(ID), nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("extra", JSON, nullable=False),
        *_stamps(),
    )
    op.create_index(
        "ux_dsp_negotiations_counter_party_pid",
        "dsp_contract_negotiations",
        ["role", "counter_party_id", "consumer_pid"],
        unique=True,
    )
    op.create_index("ix_dsp_negotiations_state", "dsp_contract_negotiations", ["state"])
    op.create_table(
        "dsp_contract_agreements",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("negotiation_id", sa.String(ID), nullable=False),
        sa.Column("provider_id", sa.String(512), nullable=False),
        sa.Column("consumer_id", sa.String(512), nullable=False),
        sa.Column("asset_id", sa.String(ID), nullable=False),
        sa.Column("policy", JSON, nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_dsp_agreements_asset_parties",
        "dsp_contract_agreements",
        ["asset_id", "consumer_id", "provider_id"],
    )
    op.create_table(
        "dsp_transfer_processes",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("counter_party_id", sa.String(512), nullable=False),
        sa.Column("counter_party_address", sa.Text, nullable=False),
        sa.Column("consumer_pid", sa.String(ID), nullable=True),
        sa.Column("provider_pid", sa.String(ID), nullable=True),
        sa.Column("agreement_id", sa.String(ID), nullable=False),
        sa.Column("dataset_id", sa.String(ID), nullable=True),
        sa.Column("format", sa.String(255), nullable=False),
        sa.Column("data_address", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("extra", JSON, nullable=False),
        *_stamps(),
    )
    op.create_index(
        "ux_dsp_transfers_counter_party_pid",
        "dsp_transfer_processes",
        ["role", "counter_party_id", "consumer_pid"],
        unique=True,
    )
    op.create_index("ix_dsp_transfers_agreement", "dsp_transfer_processes", ["agreement_id"])
    op.create_table(
        "dsp_outbox",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("process_kind", sa.String(16), nullable=False),
        sa.Column("process_id", sa.String(ID), nullable=False),
        sa.Column("recipient_id", sa.String(512), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("message_type", sa.String(64), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("leased_until", sa.BigInteger, nullable=True),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'dead')", name="ck_dsp_outbox_status"),
    )
    op.create_index("ix_dsp_outbox_due", "dsp_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_dsp_outbox_process", "dsp_outbox", ["process_kind", "process_id", "status"])
    op.create_table(
        "dsp_processed_messages",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("process_kind", sa.String(16), nullable=False),
        sa.Column("process_id", sa.String(ID), nullable=True),
        sa.Column("message_type", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for name in (
        "dsp_processed_messages",
        "dsp_outbox",
        "dsp_transfer_processes",
        "dsp_contract_agreements",
        "dsp_contract_negotiations",
        "connector_contract_definitions",
        "connector_policy_definitions",
        "connector_assets",
    ):
        op.drop_table(name)
