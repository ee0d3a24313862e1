"""Alembic environment: runs on the connection `flagstage_app.migrating` hands over.

The app migrates itself at start-up, so this environment never builds its own engine from an
ini file; `alembic` on the command line works too when `sqlalchemy.url` is set in its config.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from flagstage_app.db import make_engine
from flagstage_app.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run the migrations through the app")
    engine = make_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


run_migrations_online()
