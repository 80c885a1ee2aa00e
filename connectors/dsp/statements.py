"""Prebuilt SQL statements for the store's hot paths (SQLite and PostgreSQL).

Building a SQLAlchemy Core statement and computing its cache key costs more CPU than
executing it on SQLite: ``insert(t).values(**row)`` puts every value into the cache key,
``select(t).where(t.c.id == x)`` builds a new expression tree on each call. The statements
here are built once per table (and dialect) with bound parameters; callers execute them
with a parameter dict, so SQLAlchemy finds the compiled form by the statement's memoised
cache key.

:func:`insert_new` lets the table's unique key decide whether a row is new
(``INSERT ... ON CONFLICT (key) DO NOTHING``, both engines): a duplicate key inserts no
row (rowcount 0) and leaves the transaction usable, also on PostgreSQL, without reading
the key first.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable

_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Executable] = {}

#: Bound-parameter names the versioned update uses for its WHERE clause (not column names,
#: which SQLAlchemy reserves for the SET clause).
ID_PARAM = "b_record_id"
VERSION_PARAM = "b_record_version"


def memo(key: tuple[Any, ...], build: Any) -> Any:
    stmt = _cache.get(key)
    if stmt is None:
        with _lock:
            stmt = _cache.get(key)
            if stmt is None:
                stmt = build()
                _cache[key] = stmt
    return stmt


def insert_new(dialect: str, table: Any, key: str) -> Any:
    """``INSERT INTO table ... ON CONFLICT (key) DO NOTHING`` for ``dialect``; execute it
    with the row as parameters. A conflict on another unique index still raises."""

    def build() -> Any:
        if dialect == "postgresql":
            stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
        elif dialect == "sqlite":
            stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
        else:
            raise ValueError(f"no INSERT ... ON CONFLICT for the {dialect!r} dialect")
        # SQLAlchemy reports an INSERT's rowcount only when asked to (psycopg gives -1).
        return stmt.execution_options(preserve_rowcount=True)

    return memo(("insert_new", dialect, table.name, key), build)


def plain_insert(table: Any) -> Any:
    """``INSERT INTO table`` (columns from the parameters)."""
    return memo(("insert", table.name), lambda: insert(table))


def by_key(table: Any, key: str = "id") -> Any:
    """``SELECT * FROM table WHERE key = :key``."""
    return memo(
        ("by_key", table.name, key),
        lambda: select(table).where(table.c[key] == bindparam(key)),
    )


def versioned_update(table: Any) -> Any:
    """``UPDATE table SET ... WHERE id = :b_record_id AND version = :b_record_version``; the
    SET clause is every other parameter that names a column."""
    return memo(
        ("versioned_update", table.name),
        lambda: update(table).where(
            table.c.id == bindparam(ID_PARAM), table.c.version == bindparam(VERSION_PARAM)
        ),
    )
