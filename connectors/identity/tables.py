"""Tables of the identity package (Alembic branch ``identity``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text

metadata = MetaData()

# Token ids seen by the peer verifier, kept until the token can no longer be valid.
# Expiry leads the key: inserts land on the right edge of a single B-tree (random token
# ids spread them over the whole table, a page write each), and purging is a range delete
# of the key's prefix, so no second index. A replayed token repeats its signed ``exp``,
# so (exp, iss, jti) catches every replay; only the issuer could make another token with
# the same jti, and that is no replay.
replay = Table(
    "identity_replay",
    metadata,
    Column("expires_at", BigInteger, primary_key=True),
    Column("issuer", String(512), primary_key=True),
    Column("jti", String(128), primary_key=True),
    sqlite_with_rowid=False,
)

# The last verified member registry document of each trust anchor (discovery, restarts).
registry_documents = Table(
    "identity_registry",
    metadata,
    Column("authority", String(512), primary_key=True),
    Column("document", Text, nullable=False),
    Column("fetched_at", BigInteger, nullable=False),
)
