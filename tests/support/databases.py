"""Isolated databases for tests on SQLite (default) or the local PostgreSQL.

The suite runs once per backend: ``AUTOSPACE_TEST_DB=sqlite`` (default) or
``AUTOSPACE_TEST_DB=postgresql://postgres@127.0.0.1:5432/test``. On PostgreSQL each
database handed out is a fresh schema selected through ``search_path``, so tests and
xdist workers never see each other's rows, and node processes can be given the URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def backend() -> str:
    """``sqlite`` or the PostgreSQL base URL in use for this run."""
    return os.environ.get("AUTOSPACE_TEST_DB", "sqlite")


def is_postgres() -> bool:
    return backend().startswith("postgres")


def _pg_admin_url() -> str:
    url = backend()
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextmanager
def fresh_database_url(tmp_dir: Path) -> Iterator[str]:
    """Yield a URL to an empty database; drop it afterwards (PostgreSQL schemas)."""
    if not is_postgres():
        yield f"sqlite:///{tmp_dir / f'db-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in backend() else "?"
    try:
        yield f"{backend()}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def migrate_to(engine, target: str, *, down: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Run the node's Alembic migrations up (or down) to ``target`` on ``engine``."""
    from alembic import command

    from node.db import alembic_config

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, target)
