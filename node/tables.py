"""Tables of the node itself (Alembic branch ``node``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table

metadata = MetaData()

# Management API keys: only the SHA-256 of each key is stored.
api_keys = Table(
    "node_api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("label", String(128), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)
