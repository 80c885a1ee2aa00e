"""Tables of the policies package (its own MetaData; migrated by the "policies" branch).

- ``policy_agreements``: live agreements under usage control (policy, request template).
- ``policy_usage_counters``: uses per agreement and target, updated by compare-and-set so
  that concurrent users never exceed a count limit.
- ``policy_duties``: duty states (pending / fulfilled / violated), deadlines, attestations.
- ``policy_export_log``: every cross-border decision of the cn-auto profile.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

TZ = DateTime(timezone=True)

policy_agreements = Table(
    "policy_agreements",
    metadata,
    Column("agreement_id", String(512), primary_key=True),
    Column("policy", Text, nullable=False),  # the agreement's policy document (JSON)
    Column("profile", String(32), nullable=False),
    Column("request", Text, nullable=False),  # request template used by the monitor (JSON)
    Column("signed_at", TZ, nullable=False),
    Column("status", String(16), nullable=False),  # live / lapsed / terminated
    Column("lapsed_reason", Text, nullable=True),
    Column("updated_at", TZ, nullable=False),
)

policy_usage_counters = Table(
    "policy_usage_counters",
    metadata,
    Column("agreement_id", String(512), primary_key=True),
    Column("target", String(512), primary_key=True),
    Column("uses", BigInteger, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

policy_duties = Table(
    "policy_duties",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agreement_id", String(512), nullable=False),
    Column("duty_id", String(512), nullable=False),
    Column("action", String(255), nullable=True),
    Column("state", String(16), nullable=False),  # pending / fulfilled / violated
    Column("deadline", TZ, nullable=True),
    Column("attestation", Text, nullable=True),
    Column("updated_at", TZ, nullable=False),
    UniqueConstraint("agreement_id", "duty_id", name="uq_policy_duties_agreement_duty"),
)

policy_export_log = Table(
    "policy_export_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agreement_id", String(512), nullable=True),
    Column("asset", String(512), nullable=True),
    Column("classification", String(16), nullable=False),
    Column("home_region", String(64), nullable=True),
    Column("recipient_region", String(64), nullable=True),
    Column("recipient", String(512), nullable=True),
    Column("action", String(255), nullable=True),
    Column("approval", String(512), nullable=True),
    Column("permitted", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("policy", String(512), nullable=True),
    Column("scope", String(32), nullable=False),
    Column("decided_at", TZ, nullable=False),
)
