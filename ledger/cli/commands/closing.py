"""`ledger close`, `ledger reopen`, `ledger closes`."""

from __future__ import annotations

import datetime as dt
import getpass

import click

from ledger.cli.errors import friendly_errors
from ledger.cli.options import iso_month, wide_option
from ledger.cli.output import echo_json, print_table
from ledger.cli.runtime import open_engine
from ledger.closing.service import close_month, list_closes, reopen_month


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "unknown"


month_option = click.option("--month", required=True, callback=iso_month, metavar="YYYY-MM", help="The Korean month.")
member_option = click.option("--member", "members", multiple=True, metavar="CORPNUM",
                             help="Only this member (repeatable); default every active member.")  # fmt: skip
by_option = click.option("--by", default=None, help="Who does it, for the audit record [default: your login name].")


@click.command("close")
@month_option
@member_option
@by_option
@friendly_errors
def close(month: dt.date, members: tuple[str, ...], by: str | None) -> None:
    """Close (마감) a month: freeze its statements; later changes become prior-period adjustments."""

    done = close_month(open_engine(), month, by or _who(), corp_nums=list(members) or None)
    click.echo(f"closed {month:%Y-%m} for {len(done)} member(s): {', '.join(done) or '-'}")


@click.command("reopen")
@month_option
@member_option
@click.option("--reason", required=True, help="Why it is reopened (kept in the audit record).")
@by_option
@friendly_errors
def reopen(month: dt.date, members: tuple[str, ...], reason: str, by: str | None) -> None:
    """Reopen a closed month, with an audit record; close it again when it is right."""

    done = reopen_month(open_engine(), month, by or _who(), reason, corp_nums=list(members) or None)
    click.echo(f"reopened {month:%Y-%m} for {len(done)} member(s): {', '.join(done)}")


@click.command("closes")
@click.option("--month", callback=iso_month, metavar="YYYY-MM", help="Only this month.")
@click.option("--json", "as_json", is_flag=True)
@wide_option
@friendly_errors
def closes(month: dt.date | None, as_json: bool, wide: bool) -> None:
    """List month closes and reopens (the audit trail).

    Each reopen shows its reason; --wide shows who closed and reopened, and when."""

    rows = list_closes(open_engine(), month)
    for row in rows:
        row["month"] = f"{row['month']:%Y-%m}"
        row["state"] = "reopened" if row["reopened_at"] else "closed"
    if as_json:
        echo_json(rows)
    elif wide:
        print_table("month closes", rows, ["month", "corp_num", "state", "closed_by", "closed_at", "reopened_by",
                                           "reopened_at", "reopen_reason"], wide=True)  # fmt: skip
    else:  # the latest step of each close, and the reason, in 80 columns
        latest = [{"month": r["month"], "corp_num": r["corp_num"], "state": r["state"],
                   "at": r["reopened_at"] or r["closed_at"], "reason": r["reopen_reason"]} for r in rows]  # fmt: skip
        print_table("month closes", latest)
