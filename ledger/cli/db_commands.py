"""`ledger db ...`: schema management."""

from __future__ import annotations

import click

from ledger.cli.main import friendly_errors, open_engine


@click.group()
def db() -> None:
    """Manage the ledger database."""


@db.command()
@friendly_errors
def upgrade() -> None:
    """Create or migrate the ledger tables to the newest version."""
    from ledger.db import migrate

    engine = open_engine()
    migrate.upgrade(engine)
    click.echo("database is at the newest version")
