"""`ledger doctor`: is this machine ready to keep the ledger? One line per check."""

from __future__ import annotations

import click

from ledger.doctor.service import diagnose


@click.command()
def doctor() -> None:
    """Check the configuration, Popbill, the clock, the database, the broker and the alert
    channels; one line each. Exit 1 if any check fails."""

    failed = 0
    for finding in diagnose():
        failed += finding.failed
        click.echo(f"{finding.status:<4}  {finding.name:<11}  {finding.detail}")
    if failed:
        click.echo(f"{failed} check{'s' if failed > 1 else ''} failed", err=True)
        raise SystemExit(1)
