"""ledger: store the log's perfect subtrees in tiles of four levels.

One row per subtree cost two B-tree insertions per appended leaf. The stored hashes are
moved as they are (never recomputed), so a node tampered with before the migration is
still caught by any proof that uses it.

Revision ID: ledger_0002
Revises: ledger_0001
Create Date: 2026-11-22
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from ledger import tiles

revision = "ledger_0002"
down_revision = "ledger_0001"
branch_labels = None
depends_on = None

# Layout of the old table's key: node_key = index << 6 | level.
_LEVEL_BITS = 6
_LEVEL_MASK = (1 << _LEVEL_BITS) - 1
_INSERT_CHUNK = 1000


def _tiles_table() -> sa.Table:
    return sa.table(
        "ledger_tiles",
        sa.column("log_id", sa.Integer),
        sa.column("tile_key", sa.BigInteger),
        sa.column("width", sa.Integer),
        sa.column("hashes", sa.LargeBinary),
    )


def _nodes_table() -> sa.Table:
    return sa.table(
        "ledger_nodes",
        sa.column("log_id", sa.Integer),
        sa.column("node_key", sa.BigInteger),
        sa.column("hash", sa.LargeBinary),
    )


def _insert_chunked(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    for i in range(0, len(rows), _INSERT_CHUNK):
        conn.execute(table.insert(), rows[i : i + _INSERT_CHUNK])


def upgrade() -> None:
    conn = op.get_bind()
    # Pack every log before any DDL: a log that cannot be moved stops the migration with the
    # old table untouched (SQLite does not roll DDL back).
    packed = {log_id: _pack_log(conn, log_id, int(size)) for log_id, size in _logs(conn)}
    op.create_table(
        "ledger_tiles",
        sa.Column("log_id", sa.Integer, sa.ForeignKey("ledger_logs.id"), primary_key=True),
        sa.Column("tile_key", sa.BigInteger, primary_key=True),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("hashes", sa.LargeBinary(960), nullable=False),
        sqlite_with_rowid=False,
    )
    out = _tiles_table()
    for log_id, log_tiles in packed.items():
        _insert_chunked(
            conn,
            out,
            [
                {"log_id": log_id, "tile_key": t.key, "width": t.width, "hashes": t.hashes}
                for t in log_tiles
            ],
        )
    op.drop_table("ledger_nodes")


def _logs(conn: sa.Connection) -> list[tuple[int, int]]:
    return [(int(i), int(n)) for i, n in conn.execute(sa.text("SELECT id, size FROM ledger_logs"))]


def _pack_log(conn: sa.Connection, log_id: int, size: int) -> list[tiles.Tile]:
    nodes = _nodes_table()
    levels: dict[int, list[bytes]] = defaultdict(list)
    rows = conn.execute(
        sa.select(nodes.c.node_key, nodes.c.hash)
        .where(nodes.c.log_id == log_id)
        .order_by(nodes.c.node_key)
    )
    # Ordered by key, each level's nodes come in index order.
    for key, value in rows:
        levels[key & _LEVEL_MASK].append(bytes(value))
    try:
        return tiles.pack(size, levels)
    except ValueError as exc:
        raise RuntimeError(f"ledger log {log_id} cannot be moved to tiles: {exc}") from None


def downgrade() -> None:
    op.create_table(
        "ledger_nodes",
        sa.Column("log_id", sa.Integer, sa.ForeignKey("ledger_logs.id"), primary_key=True),
        sa.Column("node_key", sa.BigInteger, primary_key=True),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sqlite_with_rowid=False,
    )
    conn = op.get_bind()
    source, nodes = _tiles_table(), _nodes_table()
    for log_id, _size in _logs(conn):
        stored = [
            tiles.Tile(int(k), int(w), bytes(h))
            for k, w, h in conn.execute(
                sa.select(source.c.tile_key, source.c.width, source.c.hashes).where(
                    source.c.log_id == log_id
                )
            )
        ]
        _insert_chunked(
            conn,
            nodes,
            [
                {"log_id": log_id, "node_key": (n.index << _LEVEL_BITS) | n.level, "hash": h}
                for n, h in tiles.unpack(stored)
            ],
        )
    op.drop_table("ledger_tiles")
