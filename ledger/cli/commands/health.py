"""`ledger healthcheck`: exit 0, or 1 with one line saying what is wrong (docker-compose runs the
same check as `python -m ledger.health`, which loads less)."""

from __future__ import annotations

import click

from ledger.health import checks
from ledger.health.probe import check


@click.command()
@click.argument("target", type=click.Choice(checks.TARGETS), default="all")
@click.option("--node", help="The worker node to ask (default: LEDGER_WORKER_NAME, or ledger@<this host>).")
def healthcheck(target: str, node: str | None) -> None:
    """Check this host's worker node (it answers, and reaches the database), beat's heartbeat,
    or both plus the nightly sync having finished by its hour (all)."""
    code, line = check(target, node)
    click.echo(line, err=code != 0)
    raise SystemExit(code)
