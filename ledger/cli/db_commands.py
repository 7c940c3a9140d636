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


@db.command("create-reader")
@click.argument("role")
@click.option("--password", help="Login password (asked for when omitted on a terminal).")
@friendly_errors
def create_reader(role: str, password: str | None) -> None:
    """Create ROLE, which can SELECT every ledger table and view and do nothing else."""
    import sys

    from ledger.db.roles import create_reader

    if password is None and sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True, default="", show_default=False)
    create_reader(open_engine(), role, password or None)
    click.echo(f"{role} can now read the ledger")
