"""`ledger reconcile`."""

from __future__ import annotations

import click

from ledger.cli.main import EXIT_DISCREPANCIES, friendly_errors, load_settings, open_engine
from ledger.cli.options import iso_date, wide_option
from ledger.cli.output import echo_json, print_table


def _verdict(report, closing_applies: bool) -> str:
    if not report.reconciled:
        return "NO"
    return "yes" if report.closing_checked or not closing_applies else "partly"


def _closing(report, closing_applies: bool) -> str:
    return "checked" if report.closing_checked else "not run" if closing_applies else "n/a"


def print_summary(reports, *, closing_applies: bool = True, wide: bool = False) -> None:
    """The table, and a line naming members whose closing balance could not be checked (no
    balance reading since their last sync): they are never shown as simply reconciled.
    A --date/--month reconcile has no closing check (closing_applies False)."""
    rows = [{"corp_num": r.corp_num, "reconciled": _verdict(r, closing_applies), "closing": _closing(r, closing_applies),
             "new": r.new, "resolved": r.resolved,
             "open": ", ".join(f"{check} {n}" for check, n in sorted(r.open_by_check.items()))
                     or (f"checks failed: {r.error}" if r.error else "-")}
            for r in reports]  # fmt: skip
    print_table("reconciliation", rows, wide=wide)
    unchecked = [r.corp_num for r in reports if not r.closing_checked] if closing_applies else []
    if unchecked:
        click.echo(
            f"closing balance check not run for {len(unchecked)} member(s) ({', '.join(unchecked[:5])}"
            f"{', ...' if len(unchecked) > 5 else ''}): no balance reading since their last usage sync. "
            "Run `ledger balances` after `ledger sync`, then reconcile again."
        )


@click.command()
@click.option("--member", "members", multiple=True, metavar="CORPNUM", help="Only this member (repeatable).")
@click.option("--date", "day", callback=iso_date, metavar="YYYY-MM-DD", help="Check one Korean day.")
@click.option("--month", metavar="YYYY-MM", help="Check one Korean month.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
@friendly_errors
def reconcile(members, day, month, as_json, wide) -> None:
    """Check that the ledger adds up to what Popbill reports; keep and alert on discrepancies."""
    from sqlalchemy.orm import Session

    from ledger.alerts.outbox import deliver
    from ledger.members.service import get_member
    from ledger.reconcile.service import Period
    from ledger.reconcile.service import reconcile as run

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
        print_summary(reports, closing_applies=period.label == "all", wide=wide)
        for report in reports:
            for line in report.repairs + report.refetching:
                click.echo(f"{report.corp_num}: {line}")
    if not all(r.reconciled for r in reports):
        raise SystemExit(EXIT_DISCREPANCIES)  # discrepancies open: a script must be able to tell
