"""`ledger reconcile`."""

from __future__ import annotations

import click

from ledger.cli.main import friendly_errors, load_settings, open_engine
from ledger.cli.options import iso_date
from ledger.cli.output import echo_json, print_table


def print_summary(reports) -> None:
    rows = [{"corp_num": r.corp_num, "reconciled": "yes" if r.reconciled else "NO", "new": r.new, "resolved": r.resolved,
             "open": ", ".join(f"{check} {n}" for check, n in sorted(r.open_by_check.items())) or "-"}
            for r in reports]  # fmt: skip
    print_table("reconciliation", rows)


@click.command()
@click.option("--member", "members", multiple=True, metavar="CORPNUM", help="Only this member (repeatable).")
@click.option("--date", "day", callback=iso_date, metavar="YYYY-MM-DD", help="Check one Korean day.")
@click.option("--month", metavar="YYYY-MM", help="Check one Korean month.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def reconcile(members, day, month, as_json) -> None:
    """Check that the ledger adds up to what Popbill reports; keep and alert on discrepancies."""
    from ledger.alerts.outbox import deliver
    from ledger.reconcile.service import Period
    from ledger.reconcile.service import reconcile as run

    period = Period.of(day, month)
    settings = load_settings()
    engine = open_engine(settings)
    reports = run(engine, settings, corp_nums=list(members) or None, period=period)
    deliver(engine, settings)
    if as_json:
        echo_json([{"corp_num": r.corp_num, "reconciled": r.reconciled, "new": r.new, "resolved": r.resolved,
                    "open": dict(r.open_by_check)} for r in reports])  # fmt: skip
    else:
        print_summary(reports)
    if not all(r.reconciled for r in reports):
        raise SystemExit(3)  # discrepancies open: a script must be able to tell
