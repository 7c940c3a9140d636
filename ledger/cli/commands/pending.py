"""`ledger payment request`, `ledger refund request`, `ledger track`, `ledger pending`."""

from __future__ import annotations

import json
import sys

import click
from sqlalchemy.orm import Session

from ledger.alerts.outbox import deliver
from ledger.alerts.service import review_stuck
from ledger.cli.errors import EXIT_FAILURE, InputError, friendly_errors
from ledger.cli.options import wide_option
from ledger.cli.output import echo_json, kst_time, print_table
from ledger.cli.runtime import load_settings, open_engine
from ledger.members.service import get_member
from ledger.pending import sending, service
from ledger.popbill import PopbillClient
from ledger.sync.service import sync_member
from ledger.sync.windows import SyncOptions


def _request(request, corp_num: str, form, *, call: str, yes: bool, dry_run: bool, force: bool,
             refundable: bool = False):  # fmt: skip
    """Show what will be sent, ask on a terminal (--yes for scripts), then send the request,
    tracked from before it is sent (see pending/sending.py). --dry-run checks everything and
    sends nothing."""

    settings = load_settings()
    engine = open_engine(settings)
    with PopbillClient(settings) as client:
        with Session(engine, expire_on_commit=False) as session:
            member = get_member(session, corp_num)
        click.echo(f"{call} for {member.corp_num}{f' ({member.name})' if member.name else ''}:", err=True)
        for key, value in form.to_wire().items():
            click.echo(f"  {key:<13} {value}", err=True)
        extra = {}
        if refundable:
            balance = extra["refundable"] = client.get_refundable_balance(member.corp_num, member.user_id)
            click.echo(f"  (refundable balance now: {balance})", err=True)
            if form.request_point > balance:
                raise InputError(f"--points: {form.request_point} is more than the refundable balance {balance}")
        if dry_run:
            click.echo("dry run: checked, nothing sent")
            return None
        if not yes:
            if not (sys.stdin.isatty() and sys.stderr.isatty()):
                raise InputError("not a terminal to confirm on: give --yes to send it, or --dry-run to check it")
            if not click.confirm("Send it?", default=False, err=True):
                click.echo("not sent", err=True)
                raise SystemExit(EXIT_FAILURE)
        return request(engine, client, member.corp_num, form, force=force, **extra)


_FORCE = click.option(
    "--force", is_flag=True,
    help="Send even though an identical request's outcome is still unknown (it may have been registered).",
)  # fmt: skip


def _confirm_options(fn):
    fn = click.option("--dry-run", is_flag=True, help="Check everything and show it; send nothing.")(fn)
    return click.option("--yes", "-y", is_flag=True, help="Send without asking (for scripts).")(fn)


@click.group()
def payment() -> None:
    """Deposit (무통장입금) requests."""


@payment.command("request")
@click.argument("corp_num")
@click.option("--amount", required=True, help="settleCost, in won.")
@click.option("--depositor", required=True, help="The name the deposit will arrive under (paymentName).")
@click.option("--name", required=True, help="Who asks (settlerName).")
@click.option("--email", required=True, help="settlerEmail.")
@click.option("--hp", required=True, help="Mobile number to notify (notifyHP).")
@_confirm_options
@_FORCE
@friendly_errors
def payment_request(corp_num, amount, depositor, name, email, hp, yes, dry_run, force) -> None:
    """Call PaymentRequest and follow the settle code until the deposit settles. Shows what
    will be sent and asks first (--yes to skip, --dry-run to only check)."""
    form = service.payment_form(amount, depositor, name, email, hp)
    item = _request(
        sending.request_payment, corp_num, form, call="PaymentRequest", yes=yes, dry_run=dry_run, force=force
    )
    if item is not None:
        click.echo(f"settle code {item.code}: tracked until it settles")


@click.group()
def refund() -> None:
    """Point refund (환불) requests."""


@refund.command("request")
@click.argument("corp_num")
@click.option("--points", required=True, help="requestPoint.")
@click.option(
    "--bank", required=True, help="Bank name as Popbill takes it (accountBank), e.g. 국민 or 신한; not a numeric code."
)
@click.option("--account", required=True, help="Account number (accountNum).")
@click.option("--holder", required=True, help="Account holder (accountName).")
@click.option("--contact", required=True, help="contactName.")
@click.option("--tel", required=True, help="Contact telephone.")
@click.option("--reason", required=True, help="Why the refund is asked for.")
@_confirm_options
@_FORCE
@friendly_errors
def refund_request(corp_num, points, bank, account, holder, contact, tel, reason, yes, dry_run, force) -> None:
    """Call Refund (never more than GetRefundableBalance) and follow the refund code. Shows
    what will be sent and asks first (--yes to skip, --dry-run to only check)."""
    form = service.refund_form(points, bank, account, holder, contact, tel, reason)
    item = _request(
        sending.request_refund, corp_num, form, call="Refund", yes=yes, dry_run=dry_run, force=force, refundable=True
    )
    if item is not None:
        click.echo(f"refund code {item.code}: tracked until it settles")


@click.command()
@click.argument("kind", type=click.Choice(["settle", "refund"]))
@click.argument("corp_num")
@click.argument("code")
@friendly_errors
def track(kind: str, corp_num: str, code: str) -> None:
    """Follow a settle or refund CODE issued elsewhere (say, by your own web app)."""
    with Session(open_engine(), expire_on_commit=False) as session:
        item = service.track_code(session, corp_num, kind, code)
        session.commit()
    click.echo(f"tracking {item.kind} {item.code} ({item.state})")


@click.group()
def pending() -> None:
    """Tracked deposits and refunds."""


@pending.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include settled items.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
@friendly_errors
def pending_list(show_all: bool, as_json: bool, wide: bool) -> None:
    """List tracked items."""
    rows = service.list_items(open_engine(), pending_only=not show_all)
    narrow = ["corp_num", "kind", "code", "state", "next_poll_at"]
    echo_json(rows) if as_json else print_table("tracked items", rows, None if wide else narrow, wide=wide)


@pending.command("poll")
@click.option("--json", "as_json", is_flag=True, help="Print what was polled, and the next due time, as JSON.")
@friendly_errors
def pending_poll(as_json: bool) -> None:
    """Poll every due item now, and sync the members whose items settled."""

    settings = load_settings()
    engine = open_engine(settings)
    with PopbillClient(settings) as client:
        outcomes = service.poll_due(engine, client, settings)
        for corp, history in sorted({(o.corp_num, o.history) for o in outcomes if o.final}):
            sync_member(engine, client, corp, history, options=SyncOptions.from_settings(settings))
    review_stuck(engine, settings)
    deliver(engine, settings)
    polled = [{"corp_num": o.corp_num, "kind": o.kind, "code": o.code, "state": o.state} for o in outcomes]
    waiting, next_due = service.next_due(engine)
    if as_json:
        click.echo(json.dumps({"polled": polled, "pending": waiting,
                               "next_due_at": next_due.isoformat() if next_due else None}, ensure_ascii=False, indent=2))  # fmt: skip
        return
    if polled:
        print_table("polled", polled)
    else:
        click.echo("nothing was due")
    if next_due is None:
        click.echo("no items pending: nothing to poll until a request is made or a code tracked")
    else:
        click.echo(f"{waiting} item(s) pending; the next is due at {kst_time(next_due)} KST")
