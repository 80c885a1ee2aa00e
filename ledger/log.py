"""The transparency log persisted in the node database.

Every method takes the caller's SQLAlchemy ``Connection`` and runs inside whatever
transaction it has open, so a business change and its log entry commit together or not
at all. Appenders serialise on the log's head row: the first statement of an append is an
``UPDATE`` of that row, which takes a row lock on PostgreSQL and the write lock on SQLite
before anything is read, so two appenders can never compute the same leaf index.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ledger import rfc9162, tables, tiles
from ledger.checkpoint import Checkpoint, Signer, sign_checkpoint
from ledger.errors import FormatError, NotFoundError, StorageError
from ledger.records import SALT_SIZE, canonical_record, leaf_data, validate_record
from ledger.rfc9162 import NodeId

Clock = Callable[[], datetime]
SaltSource = Callable[[int], bytes]
# Record ids checked per query (below SQLite's and PostgreSQL's bind-parameter limits).
ID_CHECK_CHUNK = 1000


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewRecord:
    """A record to append: its type, its JSON value and (optionally) a caller-chosen id."""

    record_type: str
    record: Mapping[str, Any]
    record_id: str | None = None


@dataclass(frozen=True)
class Entry:
    """A logged record as stored: enough to rebuild its leaf and prove it."""

    leaf_index: int
    record_id: str
    record_type: str
    record_json: str
    salt: bytes
    logged_at: datetime

    def leaf_data(self) -> bytes:
        """The leaf's bytes (RFC 8785 JSON of type, record and salt)."""
        return leaf_data(self.record_type, self.record_json, self.salt)

    def leaf_hash(self) -> bytes:
        return rfc9162.leaf_hash(self.leaf_data())


class _DbNodes:
    """NodeSource over ``ledger_tiles`` for one log (one query per proof)."""

    def __init__(self, conn: Connection, log_id: int) -> None:
        self._conn = conn
        self._log_id = log_id

    def get_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        where = {i: tiles.locate(i) for i in ids}
        stored = self.get_tiles({k for k, _r, _p in where.values()})
        out: dict[NodeId, bytes] = {}
        for node, (key, row, position) in where.items():
            tile = stored.get(key)
            value = None if tile is None else tiles.node_in(tile, row, position)
            if value is not None:
                out[node] = value
        return out

    def get_tiles(self, keys: Collection[int]) -> dict[int, tiles.Tile]:
        """The stored tiles among ``keys``."""
        if not keys:
            return {}
        # Driver-level SQL: a proof is a handful of index lookups, cheaper than a statement.
        mark = _mark(self._conn)
        sql = (
            f"SELECT tile_key, width, hashes FROM {tables.tiles.name} "
            f"WHERE log_id = {mark} AND tile_key IN ({', '.join([mark] * len(keys))})"
        )
        rows = self._conn.exec_driver_sql(sql, (self._log_id, *keys))
        return {k: tiles.Tile(k, w, bytes(h)) for k, w, h in rows}


@contextmanager
def durable_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction whose commit reaches the disk, for signing checkpoints.

    A signed checkpoint is a public commitment to a root. The node runs SQLite with
    ``synchronous=NORMAL``, where a power cut can forget the last commits; had they been
    covered by a published checkpoint, the log would later sign another root for the same
    size, which is a fork. Committing with ``synchronous=FULL`` syncs the write-ahead log,
    and with it every earlier commit. PostgreSQL commits are durable by default.
    """
    with engine.connect() as conn:
        previous = None
        if conn.dialect.name == "sqlite":
            # The level cannot change inside a transaction: set it before, restore it after.
            previous = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
            conn.exec_driver_sql("PRAGMA synchronous=FULL")
            conn.commit()
        try:
            with conn.begin():
                yield conn
        finally:
            if previous is not None:
                conn.exec_driver_sql(f"PRAGMA synchronous={int(previous)}")
                conn.commit()


def _mark(conn: Connection) -> str:
    """The driver's positional parameter marker (sqlite3: ?, psycopg: %s)."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


class Log:
    """One append-only RFC 9162 log, identified by its origin (C2SP checkpoint origin line)."""

    def __init__(
        self, log_id: int, origin: str, *, clock: Clock = utc_now, salts: SaltSource | None = None
    ) -> None:
        self.log_id = log_id
        self.origin = origin
        self._clock = clock
        self._salts: SaltSource = salts or secrets.token_bytes

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        conn: Connection,
        origin: str,
        *,
        create: bool = True,
        clock: Clock = utc_now,
        salts: SaltSource | None = None,
    ) -> Log:
        """Open the log named ``origin``, creating it (empty) when ``create`` is true."""
        from ledger.checkpoint import check_origin

        check_origin(origin)
        t = tables.logs
        row = conn.execute(select(t.c.id).where(t.c.origin == origin)).first()
        if row is None:
            if not create:
                raise NotFoundError("no log with this origin", found=origin)
            log_id = conn.execute(
                insert(t).values(origin=origin, size=0, created_at=clock())
            ).inserted_primary_key[0]
        else:
            log_id = row[0]
        return cls(int(log_id), origin, clock=clock, salts=salts)

    # -- reading -----------------------------------------------------------------------------
    def size(self, conn: Connection) -> int:
        """Number of leaves committed (as visible to ``conn``)."""
        sql = f"SELECT size FROM {tables.logs.name} WHERE id = {_mark(conn)}"
        row = conn.exec_driver_sql(sql, (self.log_id,)).first()
        if row is None:
            raise NotFoundError("log does not exist in this database", found=self.origin)
        return int(row[0])

    def nodes(self, conn: Connection) -> _DbNodes:
        """The storage behind proofs, for callers that plan proofs themselves."""
        return _DbNodes(conn, self.log_id)

    def _check_size(self, conn: Connection, size: int) -> None:
        current = self.size(conn)
        if not 0 <= size <= current:
            raise NotFoundError("tree size beyond the log", expected=f"0..{current}", found=size)

    def root(self, conn: Connection, size: int | None = None) -> bytes:
        """Root hash of the tree of the first ``size`` leaves (default: all)."""
        if size is None:
            size = self.size(conn)
        self._check_size(conn, size)
        if size == 0:
            return rfc9162.empty_root()
        ids = rfc9162.root_plan(size)
        found = _DbNodes(conn, self.log_id).get_nodes(ids)
        if len(found) != len(ids):
            raise StorageError(
                "log storage lacks nodes of the root", expected=len(ids), found=len(found)
            )
        return rfc9162.fold([found[i] for i in ids])

    def inclusion_proof(self, conn: Connection, index: int, size: int) -> list[bytes]:
        """Audit path for leaf ``index`` in the tree of ``size`` leaves (RFC 9162 §2.1.3)."""
        self._check_size(conn, size)
        if not 0 <= index < size:
            raise NotFoundError(
                "leaf index outside the tree", expected=f"0..{size - 1}", found=index
            )
        return rfc9162.inclusion_plan(index, size).resolve(_DbNodes(conn, self.log_id))

    def consistency_proof(self, conn: Connection, old_size: int, new_size: int) -> list[bytes]:
        """Proof that the tree of ``new_size`` extends that of ``old_size`` (RFC 9162 §2.1.4)."""
        self._check_size(conn, new_size)
        if old_size == 0 or old_size == new_size:
            if not 0 <= old_size <= new_size:
                raise NotFoundError(
                    "old size beyond new size", expected=f"<= {new_size}", found=old_size
                )
            return []
        return rfc9162.consistency_plan(old_size, new_size).resolve(_DbNodes(conn, self.log_id))

    def entry(self, conn: Connection, leaf_index: int) -> Entry:
        """The stored entry at ``leaf_index``."""
        t = tables.entries
        row = (
            conn.execute(select(t).where(t.c.log_id == self.log_id, t.c.leaf_index == leaf_index))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError("no entry at this leaf index", found=leaf_index)
        return _entry(row)

    def entry_by_record_id(self, conn: Connection, record_id: str) -> Entry:
        """The stored entry for ``record_id``."""
        t = tables.entries
        row = (
            conn.execute(select(t).where(t.c.log_id == self.log_id, t.c.record_id == record_id))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError("no record with this id in the log", found=record_id)
        return _entry(row)

    # -- appending ---------------------------------------------------------------------------
    def append(
        self,
        conn: Connection,
        record_type: str,
        record: Mapping[str, Any],
        *,
        record_id: str | None = None,
    ) -> Entry:
        """Validate and append one record inside the caller's transaction."""
        return self.append_many(conn, [NewRecord(record_type, record, record_id)])[0]

    def append_many(self, conn: Connection, records: Sequence[NewRecord]) -> list[Entry]:
        """Validate and append records in order, in one batch (one lock, bulk inserts).

        Raises RecordError for an invalid record (nothing is appended) and
        StorageError when a record id is already in the log.
        """
        if not records:
            return []
        # One draw of randomness for the whole batch: 16 salt bytes (+16 for an id) each.
        pool = self._salts(2 * SALT_SIZE * len(records))
        prepared: list[tuple[str, str, str, bytes]] = []
        for n, rec in enumerate(records):
            validate_record(rec.record_type, rec.record)
            at = 2 * SALT_SIZE * n
            record_id = rec.record_id or _uuid_urn(pool[at + SALT_SIZE : at + 2 * SALT_SIZE])
            if not isinstance(record_id, str) or not 0 < len(record_id) <= 512:
                raise FormatError(
                    "record id must be a string of 1..512 characters", found=record_id
                )
            salt = pool[at : at + SALT_SIZE]
            prepared.append((record_id, rec.record_type, canonical_record(rec.record), salt))
        return self._append_prepared(conn, prepared)

    def _append_prepared(
        self, conn: Connection, prepared: Sequence[tuple[str, str, str, bytes]]
    ) -> list[Entry]:
        start = self._lock_head(conn)
        now = self._clock()
        hashes = [rfc9162.leaf_hash(leaf_data(rt, rj, s)) for (_rid, rt, rj, s) in prepared]
        edge = self._edge_tiles(conn, start)
        try:
            written = tiles.grow(start, edge, hashes)
        except ValueError as exc:
            raise StorageError("log storage is inconsistent", found=str(exc)) from None
        ids = [rid for (rid, _rt, _rj, _s) in prepared]
        if len(set(ids)) != len(ids):
            raise StorageError("record ids repeat within the batch")
        self._check_new_ids(conn, ids)
        stamp = _db_time(conn, now)
        _bulk_insert(
            conn,
            tables.entries,
            ("log_id", "leaf_index", "record_id", "record_type", "record", "salt", "logged_at"),
            [
                (self.log_id, start + i, rid, rt, rj, s, stamp)
                for i, (rid, rt, rj, s) in enumerate(prepared)
            ],
        )
        mark = _mark(conn)
        replaced = [t.key for t in written if t.key in edge]
        if replaced:
            conn.exec_driver_sql(
                f"DELETE FROM {tables.tiles.name} WHERE log_id = {mark} "
                f"AND tile_key IN ({', '.join([mark] * len(replaced))})",
                (self.log_id, *replaced),
            )
        _bulk_insert(
            conn,
            tables.tiles,
            ("log_id", "tile_key", "width", "hashes"),
            [(self.log_id, t.key, t.width, t.hashes) for t in written],
        )
        conn.exec_driver_sql(
            f"UPDATE {tables.logs.name} SET size = {mark} WHERE id = {mark}",
            (start + len(prepared), self.log_id),
        )
        return [
            Entry(start + i, rid, rt, rj, s, now) for i, (rid, rt, rj, s) in enumerate(prepared)
        ]

    def _check_new_ids(self, conn: Connection, ids: Sequence[str]) -> None:
        """Refuse record ids already in the log (checked in chunks: bind-parameter limits)."""
        mark = _mark(conn)
        head = f"SELECT record_id FROM {tables.entries.name} WHERE log_id = {mark} AND record_id"
        for i in range(0, len(ids), ID_CHECK_CHUNK):
            chunk = ids[i : i + ID_CHECK_CHUNK]
            if conn.dialect.name == "postgresql":
                # One typed array parameter: text parameters against the varchar column
                # would cast the column and turn the index lookup into a scan of the log.
                # Never prepared: psycopg prepares a statement after five runs, and the
                # generic plan PostgreSQL then keeps, made while the log was small, scans it.
                with conn.connection.driver_connection.cursor() as cur:
                    sql = f"{head} = ANY({mark}::varchar[]) LIMIT 1"
                    clash = cur.execute(sql, (self.log_id, chunk), prepare=False).fetchone()
            else:
                marks = ", ".join([mark] * len(chunk))
                sql, params = f"{head} IN ({marks}) LIMIT 1", (self.log_id, *chunk)
                clash = conn.exec_driver_sql(sql, params).first()
            if clash is not None:
                raise StorageError("record id already logged", found=clash[0])

    def _lock_head(self, conn: Connection) -> int:
        """Take the append lock (UPDATE first, then read) and return the current size."""
        mark = _mark(conn)
        conn.exec_driver_sql(
            f"UPDATE {tables.logs.name} SET size = size WHERE id = {mark}", (self.log_id,)
        )
        return self.size(conn)

    def _edge_tiles(self, conn: Connection, size: int) -> dict[int, tiles.Tile]:
        """The partial tiles on the right edge of the tree of ``size`` (they hold its frontier)."""
        keys = tiles.edge_keys(size)
        found = _DbNodes(conn, self.log_id).get_tiles(keys)
        if len(found) != len(keys):
            raise StorageError("log storage lacks edge tiles", expected=len(keys), found=len(found))
        return found

    # -- checkpoints -------------------------------------------------------------------------
    def sign_checkpoint(self, conn: Connection, signer: Signer) -> Checkpoint:
        """Sign and store a checkpoint of the current tree (reuses one already signed)."""
        size = self.size(conn)
        existing = self.checkpoint_at(conn, size)
        if existing is not None:
            return existing
        root = self.root(conn, size)
        cp = sign_checkpoint(self.origin, size, root, signer)
        conn.execute(
            insert(tables.checkpoints).values(
                log_id=self.log_id, tree_size=size, root=root, note=cp.note, signed_at=self._clock()
            )
        )
        return cp

    def checkpoint_at(self, conn: Connection, size: int) -> Checkpoint | None:
        """The stored signed checkpoint for ``size``, if one was signed."""
        t = tables.checkpoints
        row = conn.execute(
            select(t.c.note).where(t.c.log_id == self.log_id, t.c.tree_size == size)
        ).first()
        return None if row is None else Checkpoint.from_note(row[0])

    def latest_checkpoint(self, conn: Connection) -> Checkpoint | None:
        """The most recent stored signed checkpoint (what the public endpoint serves)."""
        t = tables.checkpoints
        row = conn.execute(
            select(t.c.note)
            .where(t.c.log_id == self.log_id)
            .order_by(t.c.tree_size.desc())
            .limit(1)
        ).first()
        return None if row is None else Checkpoint.from_note(row[0])


def _bulk_insert(conn: Connection, table: Any, columns: Sequence[str], rows: list[tuple]) -> None:
    """executemany straight on the driver for SQLite and PostgreSQL (the append hot path).

    SQLAlchemy's per-row parameter processing costs more than the insert itself at
    50,000 rows/s; the values here are plain ints, str, bytes and one timestamp.
    """
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        conn.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    names = ", ".join(columns)
    if dialect == "postgresql":
        _copy_rows(conn, table.name, names, rows)
        return
    mark = "?"
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([mark] * len(columns))})"
    try:
        conn.exec_driver_sql(sql, rows)
    except IntegrityError as exc:
        raise StorageError(
            "log storage refused the append (concurrent writer or duplicate)",
            found=str(exc.orig)[:200],
        ) from None


def _copy_rows(conn: Connection, table: str, names: str, rows: list[tuple]) -> None:
    """PostgreSQL bulk path: COPY ... FROM STDIN inside the caller's transaction."""
    from psycopg import errors as pg_errors

    driver = conn.connection.driver_connection
    try:
        with driver.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    except pg_errors.IntegrityError as exc:
        raise StorageError(
            "log storage refused the append (concurrent writer or duplicate)",
            found=str(exc)[:200],
        ) from None


def _db_time(conn: Connection, value: datetime) -> Any:
    """A timestamp as the driver should receive it for a DateTime(timezone=True) column."""
    if conn.dialect.name == "sqlite":
        # SQLAlchemy's SQLite DateTime storage format, so reads through Core parse it.
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _uuid_urn(random16: bytes) -> str:
    """A random (version 4, RFC 9562) UUID URN from 16 random bytes."""
    b = bytearray(random16)
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 9562 variant
    h = b.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _entry(row: Mapping[str, Any]) -> Entry:
    logged_at = row["logged_at"]
    if logged_at.tzinfo is None:
        logged_at = logged_at.replace(tzinfo=UTC)
    return Entry(
        int(row["leaf_index"]),
        row["record_id"],
        row["record_type"],
        row["record"],
        bytes(row["salt"]),
        logged_at,
    )
