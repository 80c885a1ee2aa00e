"""Tables of the identity package (Alembic branch ``identity``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, Text

metadata = MetaData()

# Token ids seen by the peer verifier, kept until the token can no longer be valid.
replay = Table(
    "identity_replay",
    metadata,
    Column("issuer", String(512), primary_key=True),
    Column("jti", String(128), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_identity_replay_expires_at", "expires_at"),
)

# The last verified member registry document of each trust anchor (discovery, restarts).
registry_documents = Table(
    "identity_registry",
    metadata,
    Column("authority", String(512), primary_key=True),
    Column("document", Text, nullable=False),
    Column("fetched_at", BigInteger, nullable=False),
)
