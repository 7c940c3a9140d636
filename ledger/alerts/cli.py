"""`ledger balances` and `ledger alerts ...`."""

from __future__ import annotations

import click

from ledger.alerts import service
from ledger.alerts.outbox import channels, deliver
from ledger.cli.main import friendly_errors, load_settings, open_engine
from ledger.cli.options import wide_option
from ledger.cli.output import echo_json, kst_time, print_table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
@friendly_errors
def balances(as_json: bool, wide: bool) -> None:
    """Check every balance now (GetBalance, GetPartnerBalance), alert, and print a table."""
    from ledger.popbill import PopbillClient

    settings = load_settings()
    engine = open_engine(settings)
    with PopbillClient(settings) as client:
        readings = service.check_balances(engine, client, settings)
    deliver(engine, settings)
    rows = [
        {"subject": r.subject, "balance": r.balance, "threshold": r.threshold, "daily_use": r.daily_use,
         "days_left": r.days_left, "alerts": ", ".join(r.alerts), "error": r.error}
        for r in readings
    ]  # fmt: skip
    narrow = ["subject", "balance", "threshold", "days_left", "alerts", "error"]
    echo_json(rows) if as_json else print_table("balances", rows, None if wide else narrow, wide=wide)
    if any(r.error for r in readings):
        raise click.ClickException("some balances could not be read; see the error column")


@click.group()
def alerts() -> None:
    """Low-balance, runway and stuck-item alerts."""


@alerts.command("list")
@click.option("--firing", is_flag=True, help="Only firing alerts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
@friendly_errors
def list_(firing: bool, as_json: bool, wide: bool) -> None:
    """List alerts and their states."""
    rows = service.list_alerts(open_engine(), firing_only=firing)
    narrow = ["subject", "rule", "state", "fired_at", "summary"]
    echo_json(rows) if as_json else print_table("alerts", rows, None if wide else narrow, wide=wide)


@alerts.command()
@click.argument("corp_num")
@click.option("--for", "duration", required=True, help="How long: 30m, 12h, 2d, 1w.")
@friendly_errors
def mute(corp_num: str, duration: str) -> None:
    """Hold back a member's notifications for a while ('partner' mutes the partner's)."""
    from sqlalchemy.orm import Session

    from ledger.members.service import get_member

    span = service.parse_duration(duration)
    engine = open_engine()
    if corp_num == "partner":
        subject = "partner"
    else:
        with Session(engine) as session:
            subject = get_member(session, corp_num).corp_num
    until = service.mute(engine, subject, span)
    click.echo(f"{subject} muted until {kst_time(until)} KST")


@alerts.command()
@friendly_errors
def test() -> None:
    """Send a test notification on every configured channel."""
    settings = load_settings()
    engine = open_engine(settings)
    service.send_test(engine, settings)
    counts = deliver(engine, settings)
    click.echo(f"channels: {', '.join(channels(settings))}; sent {counts['sent']}, failed {counts['failed']}")
    if counts["failed"]:
        raise click.ClickException("a channel failed; the outbox will retry it (see `ledger alerts list`)")
