"""`ledger reconcile`."""

from __future__ import annotations

import click
from sqlalchemy.orm import Session

from ledger.alerts.outbox import deliver
from ledger.cli.errors import EXIT_DISCREPANCIES, friendly_errors
from ledger.cli.options import iso_date, wide_option
from ledger.cli.output import echo_json
from ledger.cli.runtime import load_settings, open_engine
from ledger.cli.summaries import print_reconciliation
from ledger.members.service import get_member
from ledger.reconcile.service import Period
from ledger.reconcile.service import reconcile as run


@click.command()
@click.option("--member", "members", multiple=True, metavar="CORPNUM", help="Only this member (repeatable).")
@click.option("--date", "day", callback=iso_date, metavar="YYYY-MM-DD", help="Check one Korean day.")
@click.option("--month", metavar="YYYY-MM", help="Check one Korean month.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
@friendly_errors
def reconcile(members, day, month, as_json, wide) -> None:
    """Check that the ledger adds up to what Popbill reports; keep and alert on discrepancies."""
    period = Period.of(day, month)
    settings = load_settings()
    engine = open_engine(settings)
    if members:  # each must be a member: a typo must not reconcile nothing and exit 0
        with Session(engine) as session:
            members = [get_member(session, corp).corp_num for corp in members]
    reports = run(engine, settings, corp_nums=list(members) or None, period=period)
    deliver(engine, settings)
    if as_json:
        echo_json([{"corp_num": r.corp_num, "reconciled": r.reconciled, "closing_checked": r.closing_checked,
                    "new": r.new, "resolved": r.resolved, "open": dict(r.open_by_check), "repairs": r.repairs,
                    "refetching": r.refetching, "error": r.error}
                   for r in reports])  # fmt: skip
    else:
        print_reconciliation(reports, closing_applies=period.label == "all", wide=wide)
        for report in reports:
            for line in report.repairs + report.refetching:
                click.echo(f"{report.corp_num}: {line}")
    if not all(r.reconciled for r in reports):
        raise SystemExit(EXIT_DISCREPANCIES)  # discrepancies open: a script must be able to tell
