"""The ledger's tables (own MetaData, migrated by the Alembic branch "ledger").

Only perfect subtrees are stored, grouped into tiles of four levels (``ledger.tiles``) in
``ledger_tiles``: about n/15 rows for n leaves, each written once except the few partial
tiles on the right edge (append is amortised O(1)); a proof or root reads about two tiles
per four levels.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

logs = Table(
    "ledger_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(255), nullable=False, unique=True),
    # Number of leaves; the row doubles as the append lock (UPDATE serialises appenders).
    Column("size", BigInteger, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tiles = Table(
    "ledger_tiles",
    metadata,
    Column("log_id", Integer, ForeignKey("ledger_logs.id"), primary_key=True),
    # ledger.tiles.tile_key(group, index)
    Column("tile_key", BigInteger, primary_key=True),
    # Base nodes present (1..16); the hashes follow row by row (at most 30 x 32 bytes).
    Column("width", Integer, nullable=False),
    Column("hashes", LargeBinary(960), nullable=False),
    # SQLite: one B-tree keyed by the primary key (a full tile stays under its in-page limit).
    sqlite_with_rowid=False,
)

entries = Table(
    "ledger_entries",
    metadata,
    Column("log_id", Integer, ForeignKey("ledger_logs.id"), primary_key=True),
    Column("leaf_index", BigInteger, primary_key=True),
    Column("record_id", String(512), nullable=False),
    Column("record_type", String(64), nullable=False),
    # RFC 8785 canonical JSON of the record (without the salt).
    Column("record", Text, nullable=False),
    Column("salt", LargeBinary(16), nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("log_id", "record_id", name="uq_ledger_entries_record"),
    sqlite_with_rowid=False,
)

checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("log_id", Integer, ForeignKey("ledger_logs.id"), primary_key=True),
    Column("tree_size", BigInteger, primary_key=True),
    Column("root", LargeBinary(32), nullable=False),
    # The full signed note, exactly as signed.
    Column("note", Text, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
)

anchors = Table(
    "ledger_anchors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("log_id", Integer, ForeignKey("ledger_logs.id"), nullable=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("chain_id", BigInteger, nullable=False),
    Column("contract", String(42), nullable=False),
    # pending -> submitted -> confirmed (see ledger.anchor.AnchorState)
    Column("state", String(16), nullable=False),
    Column("tx_hash", String(66)),
    Column("nonce", BigInteger),
    Column("block_number", BigInteger),
    Column("block_hash", String(66)),
    Column("gas_used", BigInteger),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("submitted_at", DateTime(timezone=True)),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("next_attempt_at", DateTime(timezone=True)),
    Index("ix_ledger_anchors_log_state", "log_id", "state"),
)

epcis_events = Table(
    "ledger_epcis_events",
    metadata,
    Column("log_id", Integer, ForeignKey("ledger_logs.id"), primary_key=True),
    Column("event_id", String(512), primary_key=True),
    Column("event_type", String(32), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("leaf_index", BigInteger, nullable=False),
    Index("ix_ledger_epcis_events_time", "log_id", "event_time"),
)

# One row per identifier an event mentions (EPC, parent, child, input, output, class).
epcis_identifiers = Table(
    "ledger_epcis_identifiers",
    metadata,
    Column("log_id", Integer, ForeignKey("ledger_logs.id"), primary_key=True),
    Column("event_id", String(512), primary_key=True),
    Column("identifier", String(512), primary_key=True),
    Column("role", String(16), primary_key=True),
    Index("ix_ledger_epcis_identifiers_id", "log_id", "identifier"),
)
