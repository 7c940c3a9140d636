"""`ledger db ...`: schema management."""

from __future__ import annotations

import click

from ledger.cli.main import friendly_errors, load_settings, open_engine


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
@friendly_errors
def create_reader(role: str) -> None:
    """Create ROLE, which can SELECT every ledger table and view and do nothing else.

    The password is asked for on a terminal, or read from LEDGER_READER_PASSWORD (never from
    the command line, which other users of the machine can see); it is sent to the server
    already hashed (SCRAM-SHA-256). An existing role with more than read rights is refused."""
    import sys

    from ledger.db.roles import create_reader

    settings = load_settings()
    password = settings.reader_password.reveal() if settings.reader_password else None
    if password is None and sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True, default="", show_default=False)
    create_reader(open_engine(settings), role, password or None)
    click.echo(
        f"{role} can now read the ledger" + ("" if password else " (no password set: it logs in by other means)")
    )
