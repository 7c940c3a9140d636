"""`ledger balances` and `ledger alerts ...`."""

from __future__ import annotations

import click

from ledger.alerts import service
from ledger.alerts.outbox import channels, deliver
from ledger.cli.main import friendly_errors, load_settings, open_engine
from ledger.cli.output import echo_json, print_table


@click.command()
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def balances(as_json: bool) -> None:
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
    echo_json(rows) if as_json else print_table("balances", rows)
    if any(r.error for r in readings):
        raise click.ClickException("some balances could not be read; see the error column")


@click.group()
def alerts() -> None:
    """Low-balance, runway and stuck-item alerts."""


@alerts.command("list")
@click.option("--firing", is_flag=True, help="Only firing alerts.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_(firing: bool, as_json: bool) -> None:
    """List alerts and their states."""
    rows = service.list_alerts(open_engine(), firing_only=firing)
    echo_json(rows) if as_json else print_table("alerts", rows)


@alerts.command()
@click.argument("corp_num")
@click.option("--for", "duration", required=True, help="How long: 30m, 12h, 2d, 1w.")
@friendly_errors
def mute(corp_num: str, duration: str) -> None:
    """Hold back a member's notifications for a while ('partner' mutes the partner's)."""
    from ledger.popbill import validation

    span = service.parse_duration(duration)
    subject = "partner" if corp_num == "partner" else validation.corp_num(corp_num, "mute")
    until = service.mute(open_engine(), subject, span)
    click.echo(f"{subject} muted until {until.isoformat()}")


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
