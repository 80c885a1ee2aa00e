"""Alembic environment: one branch per package, all applied with ``upgrade heads``."""

from __future__ import annotations

from alembic import context

from node.db import all_metadata, make_engine

config = context.config
target_metadata = all_metadata()


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.attributes["database_url"])
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
