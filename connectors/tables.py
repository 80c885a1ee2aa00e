"""Tables of the connector: published assets and definitions, DSP processes, outbox.

Declared on the package's own ``metadata`` and created by the Alembic branch
``connectors`` (``node/migrations/versions/connectors_0001_initial.py``). Times that
workers compare (next attempt, lease expiry) are epoch milliseconds so both SQLite and
PostgreSQL compare plain integers; record timestamps are timezone-aware datetimes.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# JSONB on PostgreSQL (indexable, ->> selection for asset selectors), JSON text on SQLite.
JsonType = JSON().with_variant(JSONB(), "postgresql")
# 64-bit ids on PostgreSQL; SQLite only auto-increments INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ID = 255  # length of ids and pids (IRIs such as urn:uuid:... or DIDs)
CLASSIFICATION_LEVELS = ("general", "important", "core")  # cn-auto: 一般 / 重要 / 核心


def _timestamps() -> list[Column]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("version", Integer, nullable=False),
    ]


assets = Table(
    "connector_assets",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("properties", JsonType, nullable=False),
    Column("private_properties", JsonType, nullable=False),
    Column("data_address", JsonType, nullable=False),
    Column("classification", String(16), nullable=False),
    Column("home_region", String(64), nullable=True),
    *_timestamps(),
    CheckConstraint(
        "classification IN ('general', 'important', 'core')",
        name="ck_connector_assets_classification",
    ),
)

policy_definitions = Table(
    "connector_policy_definitions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("policy", JsonType, nullable=False),
    Column("private_properties", JsonType, nullable=False),
    *_timestamps(),
)

contract_definitions = Table(
    "connector_contract_definitions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("access_policy_id", String(ID), nullable=False),
    Column("contract_policy_id", String(ID), nullable=False),
    Column("assets_selector", JsonType, nullable=False),
    *_timestamps(),
)

contract_negotiations = Table(
    "dsp_contract_negotiations",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("counter_party_id", String(512), nullable=False),
    Column("counter_party_address", Text, nullable=False),
    Column("consumer_pid", String(ID), nullable=True),
    Column("provider_pid", String(ID), nullable=True),
    Column("dataset_id", String(ID), nullable=True),
    Column("offer", JsonType, nullable=True),
    Column("contract_definition_id", String(ID), nullable=True),
    Column("agreement_id", String(ID), nullable=True),
    Column("error", JsonType, nullable=True),
    Column("extra", JsonType, nullable=False),
    *_timestamps(),
    Index(
        "ux_dsp_negotiations_counter_party_pid",
        "role",
        "counter_party_id",
        "consumer_pid",
        unique=True,
    ),
    Index("ix_dsp_negotiations_state", "state"),
)

# Negotiations started by POST /management/v3/edrs whose transfer has not been started yet.
# An index for the dispatcher's follow-up, which then touches only these instead of every
# FINALIZED negotiation; the transfer request itself stays in the negotiation's ``extra``.
edr_pending = Table(
    "connector_edr_pending",
    metadata,
    Column("negotiation_id", String(ID), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

contract_agreements = Table(
    "dsp_contract_agreements",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("negotiation_id", String(ID), nullable=False),
    Column("provider_id", String(512), nullable=False),
    Column("consumer_id", String(512), nullable=False),
    Column("asset_id", String(ID), nullable=False),
    Column("policy", JsonType, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_dsp_agreements_asset_parties", "asset_id", "consumer_id", "provider_id"),
)

transfer_processes = Table(
    "dsp_transfer_processes",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("counter_party_id", String(512), nullable=False),
    Column("counter_party_address", Text, nullable=False),
    Column("consumer_pid", String(ID), nullable=True),
    Column("provider_pid", String(ID), nullable=True),
    Column("agreement_id", String(ID), nullable=False),
    Column("dataset_id", String(ID), nullable=True),
    Column("format", String(255), nullable=False),
    Column("data_address", JsonType, nullable=True),
    Column("error", JsonType, nullable=True),
    Column("extra", JsonType, nullable=False),
    *_timestamps(),
    Index(
        "ux_dsp_transfers_counter_party_pid",
        "role",
        "counter_party_id",
        "consumer_pid",
        unique=True,
    ),
    Index("ix_dsp_transfers_agreement", "agreement_id"),
)

outbox = Table(
    "dsp_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("process_kind", String(16), nullable=False),
    Column("process_id", String(ID), nullable=False),
    Column("recipient_id", String(512), nullable=False),
    Column("url", Text, nullable=False),
    Column("message_type", String(64), nullable=False),
    Column("body", JsonType, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),  # epoch ms
    Column("leased_until", BigInteger, nullable=True),  # epoch ms
    Column("lease_owner", String(255), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("status IN ('pending', 'sent', 'dead')", name="ck_dsp_outbox_status"),
    Index("ix_dsp_outbox_due", "status", "next_attempt_at"),
    Index("ix_dsp_outbox_process", "process_kind", "process_id", "status"),
)

processed_messages = Table(
    "dsp_processed_messages",
    metadata,
    Column("key", String(64), primary_key=True),  # sha256 hex of sender + target + content
    Column("process_kind", String(16), nullable=False),
    Column("process_id", String(ID), nullable=True),
    Column("message_type", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JsonType, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
