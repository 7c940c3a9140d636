"""`ledger close`, `ledger reopen`, `ledger closes`."""

from __future__ import annotations

import datetime as dt
import getpass

import click

from ledger.cli.errors import friendly_errors
from ledger.cli.options import iso_month, wide_option
from ledger.cli.output import echo_document, echo_json, print_table
from ledger.cli.runtime import open_engine
from ledger.closing.service import CloseRefused, close_month, list_closes, reopen_month


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
@click.option("--force", is_flag=True, help="Close members whose checks fail too (never one that was never synced).")
@click.option("--reason", default=None, help="With --force: why (kept in the audit record with what was overridden).")
@click.option("--json", "as_json", is_flag=True, help="Print every member closed, forced or refused, as JSON.")
@friendly_errors
def close(month: dt.date, members: tuple[str, ...], by: str | None, force: bool, reason: str | None,
          as_json: bool) -> None:  # fmt: skip
    """Close (마감) a month: freeze its statements; later changes become prior-period adjustments.
    Refused, naming each member and why, while a member has open discrepancies touching the
    month, has not been synced through the month's end, or its statement does not add up."""

    if force and not (reason or "").strip():
        raise click.BadParameter("--force needs --reason \"why\" (it is kept in the audit record)", param_hint="--reason")
    if reason is not None and not force:
        raise click.BadParameter("--reason goes with --force", param_hint="--reason")
    try:
        result = close_month(open_engine(), month, by or _who(), corp_nums=list(members) or None,
                             force_reason=reason if force else None)  # fmt: skip
    except CloseRefused as refused:
        if as_json:
            echo_document({"month": f"{month:%Y-%m}", "closed": [], "refused": [_refusal(r) for r in refused.refusals]})
        raise
    if as_json:
        echo_document({"month": f"{month:%Y-%m}", "closed": result.closed, "forced": [_refusal(r) for r in result.forced],
                   "left_out": [_refusal(r) for r in result.left_out]})  # fmt: skip
        return
    click.echo(f"closed {month:%Y-%m} for {len(result.closed):,} member(s){_few(result.closed)}")
    if result.forced:
        click.echo(f"forced over failed checks for {len(result.forced):,} member(s) (reason kept in `ledger closes`): "
                   + "; ".join(f"{r.corp_num}: {', '.join(r.reasons)}" for r in result.forced[:3])
                   + (f"; and {len(result.forced) - 3} more" if len(result.forced) > 3 else ""))  # fmt: skip
    if result.left_out:
        click.echo(f"not closed, never synced: {len(result.left_out):,} member(s){_few([r.corp_num for r in result.left_out])}",
                   err=True)  # fmt: skip


def _few(corp_nums: list[str], shown: int = 5) -> str:
    """': a, b, c' for a few; the count says the rest (--json lists every one)."""
    if not corp_nums:
        return ""
    more = f" and {len(corp_nums) - shown:,} more (--json lists every one)" if len(corp_nums) > shown else ""
    return ": " + ", ".join(corp_nums[:shown]) + more


def _refusal(refusal) -> dict:
    return {"corp_num": refusal.corp_num, "name": refusal.name, "reasons": list(refusal.reasons),
            "never_synced": refusal.never_synced}  # fmt: skip


@click.command("reopen")
@month_option
@member_option
@click.option("--reason", required=True, help="Why it is reopened (kept in the audit record).")
@by_option
@friendly_errors
def reopen(month: dt.date, members: tuple[str, ...], reason: str, by: str | None) -> None:
    """Reopen a closed month, with an audit record; close it again when it is right."""

    done = reopen_month(open_engine(), month, by or _who(), reason, corp_nums=list(members) or None)
    click.echo(f"reopened {month:%Y-%m} for {len(done):,} member(s){_few(done)}")


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
        print_table("month closes", rows, ["month", "corp_num", "state", "closed_by", "closed_at", "forced_reason",
                                           "reopened_by", "reopened_at", "reopen_reason"], wide=True)  # fmt: skip
    else:  # the latest step of each close, and its reason, in 80 columns
        latest = [{"month": r["month"], "corp_num": r["corp_num"], "state": r["state"],
                   "at": r["reopened_at"] or r["closed_at"], "reason": r["reopen_reason"] or r["forced_reason"]}
                  for r in rows]  # fmt: skip
        print_table("month closes", latest)
