"""The node's database engine and schema migrations.

`node/` owns the engine; every package owns its tables, declared on its own
SQLAlchemy ``MetaData`` and migrated by its own Alembic branch (branch label =
package name) under ``node/migrations/versions``. ``upgrade heads`` applies all
branches, so packages never edit each other's migration chains.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine, make_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Modules that declare a package's tables, each exposing ``metadata: MetaData``.
# Listed here (the composition root) so Alembic and tests see every table.
TABLE_MODULES: tuple[str, ...] = (
    "node.tables",
    "connectors.identity.tables",
    "connectors.tables",
    "policies.tables",
    "ledger.tables",
    "federated.tables",
    "connectors.dataplane.tables",
)

SQLITE_BUSY_TIMEOUT_MS = 5000
# PostgreSQL: how long a statement waits for a row or table lock before it fails (and the
# request answers 503), as SQLite's busy timeout bounds its wait for the writer lock.
PG_LOCK_TIMEOUT_MS = 5000
# Migrations may wait longer for their locks (a running node's readers), but not forever.
PG_MIGRATION_LOCK_TIMEOUT_MS = 60_000


def all_metadata() -> list[MetaData]:
    """Return the ``MetaData`` of every package that has tables (missing modules are skipped)."""
    found: list[MetaData] = []
    for name in TABLE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise
            continue
        found.append(module.metadata)
    return found


def make_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int | None = None,
    lock_timeout_ms: int = PG_LOCK_TIMEOUT_MS,
) -> Engine:
    """Create an engine for SQLite (WAL, busy timeout, foreign keys) or PostgreSQL.

    SQLite is the embedded default: WAL lets readers run beside the writer and the busy
    timeout turns short lock waits into delays instead of errors.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.close()

        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs: dict = {"echo": echo, "pool_pre_ping": True}
    if pool_size is not None:
        kwargs["pool_size"] = pool_size
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "postgresql":
        timeout = int(lock_timeout_ms)

        @event.listens_for(engine, "connect")
        def _pg_session(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # a session setting: committed, so the pool's rollbacks keep it
            dbapi_conn.execute(f"SET lock_timeout = {timeout}")
            dbapi_conn.commit()

    return engine


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    """Build an Alembic ``Config`` pointing at the node's migrations for ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    cfg.attributes["database_url"] = url
    return cfg


def migrate(engine: Engine) -> None:
    """Apply every package's migrations (all Alembic heads) on ``engine``."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {PG_MIGRATION_LOCK_TIMEOUT_MS}")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
