"""Bringing a database's schema up to date with the Alembic migrations, from code.

The app calls `upgrade_database` at start-up; running it on an up-to-date database is a cheap
no-op. Alembic's version table makes concurrent pods safe on PostgreSQL: the first one to take
the table's lock migrates, the others find nothing left to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to `revision` on `engine`'s database."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    logger.info("database schema of %s is at %s", engine.url.render_as_string(), revision)
