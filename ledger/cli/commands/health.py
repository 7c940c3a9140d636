"""`ledger healthcheck`: exit 0, or 1 with one line saying what is wrong (docker-compose runs it)."""

from __future__ import annotations

import click

from ledger.cli.errors import friendly_errors
from ledger.cli.runtime import load_settings, open_engine
from ledger.health import checks


@click.command()
@click.argument("target", type=click.Choice(checks.TARGETS), default="all")
@friendly_errors
def healthcheck(target: str) -> None:
    """Check the database, the broker, and then: a worker answering a ping (worker), beat's
    heartbeat (beat), or both plus the nightly sync having finished by its hour (all)."""
    settings = load_settings()
    problems = checks.run(target, open_engine(settings), settings)
    if problems:
        click.echo("; ".join(problems), err=True)
        raise SystemExit(1)
    click.echo(f"ok: {target}")
