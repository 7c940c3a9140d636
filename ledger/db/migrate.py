"""Alembic, driven from code, so `ledger db upgrade` and the tests share one path.

The revisions ship inside the package (ledger/migrations: in a checkout, a link to the
repository's top-level migrations/, which `alembic` run from the checkout reads through
alembic.ini), so an installed wheel migrates with no file beside it. The configuration is
built here rather than read from alembic.ini: the ini only adds logging, and the engine's
connection is handed to env.py directly.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def rebuild(engine: Engine) -> None:
    """Drop everything in the database's public schema and migrate it again: an empty ledger at
    the newest revision, whatever was there (the demo's own database, never a configured one)."""
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '10s'"))  # a session left open on it: say so, not hang
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def revisions(engine: Engine) -> tuple[set[str], set[str]]:
    """(the revisions the database is at, the newest revisions the code has)."""

    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current, heads
