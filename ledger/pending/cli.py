"""`ledger payment request`, `ledger refund request`, `ledger track`, `ledger pending`."""

from __future__ import annotations

import click
from sqlalchemy.orm import Session

from ledger.cli.main import friendly_errors, load_settings, open_engine
from ledger.cli.output import echo_json, print_table
from ledger.pending import sending, service


def _request(request, corp_num: str, form, force: bool):
    """Send a deposit or refund request, tracked from before it is sent (see pending/sending.py)."""
    from ledger.popbill import PopbillClient

    settings = load_settings()
    with PopbillClient(settings) as client:
        return request(open_engine(settings), client, corp_num, form, force=force)


_FORCE = click.option(
    "--force", is_flag=True,
    help="Send even though an identical request's outcome is still unknown (it may have been registered).",
)  # fmt: skip


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
@_FORCE
@friendly_errors
def payment_request(corp_num, amount, depositor, name, email, hp, force) -> None:
    """Call PaymentRequest and follow the settle code until the deposit settles."""
    form = service.payment_form(amount, depositor, name, email, hp)
    item = _request(sending.request_payment, corp_num, form, force)
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
@_FORCE
@friendly_errors
def refund_request(corp_num, points, bank, account, holder, contact, tel, reason, force) -> None:
    """Call Refund (never more than GetRefundableBalance) and follow the refund code."""
    form = service.refund_form(points, bank, account, holder, contact, tel, reason)
    item = _request(sending.request_refund, corp_num, form, force)
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
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def pending_list(show_all: bool, as_json: bool) -> None:
    """List tracked items."""
    rows = service.list_items(open_engine(), pending_only=not show_all)
    echo_json(rows) if as_json else print_table("tracked items", rows)


@pending.command("poll")
@friendly_errors
def pending_poll() -> None:
    """Poll every due item now, and sync the members whose items settled."""
    from ledger.alerts.outbox import deliver
    from ledger.alerts.service import review_stuck
    from ledger.popbill import PopbillClient
    from ledger.sync.service import sync_member
    from ledger.sync.windows import SyncOptions

    settings = load_settings()
    engine = open_engine(settings)
    with PopbillClient(settings) as client:
        outcomes = service.poll_due(engine, client, settings)
        for corp, history in sorted({(o.corp_num, o.history) for o in outcomes if o.final}):
            sync_member(engine, client, corp, history, options=SyncOptions.from_settings(settings))
    review_stuck(engine, settings)
    deliver(engine, settings)
    print_table(
        "polled", [{"corp_num": o.corp_num, "kind": o.kind, "code": o.code, "state": o.state} for o in outcomes]
    )
