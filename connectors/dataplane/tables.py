"""Tables of the data plane: refresh-token generations, push jobs and the access log.

Declared on the package's own ``metadata`` and created by the Alembic branch ``dataplane``
(``node/migrations/versions/dataplane_0001_initial.py``, ``dataplane_0002_use_released.py``).
Worker times (next attempt, lease expiry) are epoch milliseconds so SQLite and PostgreSQL
compare plain integers.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

ID = 255  # ids and pids (IRIs such as urn:uuid:...), as in connectors.tables
# 64-bit ids on PostgreSQL; SQLite only auto-increments INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# One row per transfer whose refresh token was ever used: the generation a refresh token
# must carry to be accepted. Refreshing moves it on by one (compare-and-set), so a used
# refresh token never works again.
refresh_generations = Table(
    "dataplane_refresh_generations",
    metadata,
    Column("transfer_id", String(ID), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Push transfers the worker has taken on (the transfer process row says which to push).
pushes = Table(
    "dataplane_pushes",
    metadata,
    Column("transfer_id", String(ID), primary_key=True),
    Column("status", String(16), nullable=False),  # pending | done | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),  # epoch ms
    Column("leased_until", BigInteger, nullable=True),  # epoch ms
    Column("lease_owner", String(255), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("bytes", BigInteger, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every access to data, permitted or denied: who, what, when, how many bytes, their hash.
access_log = Table(
    "dataplane_access_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(8), nullable=False),  # pull | push
    Column("transfer_id", String(ID), nullable=True),
    Column("agreement_id", String(ID), nullable=True),
    Column("asset_id", String(ID), nullable=True),
    Column("consumer_id", String(512), nullable=True),
    Column("purpose", String(512), nullable=True),
    Column("decision", String(8), nullable=False),  # permit | deny
    Column("reason", Text, nullable=True),
    Column("status", String(16), nullable=False),  # complete | aborted | failed | denied
    Column("bytes", BigInteger, nullable=False),  # bytes the consumer was handed
    Column("sha256", String(64), nullable=True),
    Column("detail", String(1024), nullable=True),  # subpath / range served
    Column("ledger_record_id", String(512), nullable=True),
    # a permitted use that delivered no byte was given back to the usage counter
    # (dataplane_0002; false for every other access)
    Column("use_released", Boolean, nullable=False, server_default=false()),
    Index("ix_dataplane_access_log_transfer", "transfer_id"),
    Index("ix_dataplane_access_log_agreement", "agreement_id"),
)
