"""`ledger balances` and `ledger alerts ...`."""

from __future__ import annotations

import contextlib
import getpass

import click

from ledger import logs
from ledger.alerts import alertmanager, service
from ledger.alerts.alertmanager import push_quietly
from ledger.alerts.outbox import channels, deliver
from ledger.alerts.relay import make_relay_server
from ledger.cli.errors import friendly_errors
from ledger.cli.options import wide_option
from ledger.cli.output import echo_json, echo_json_lines, kst_time, print_table
from ledger.cli.runtime import load_settings, open_client, open_engine
from ledger.popbill import validation


@contextlib.contextmanager
def _alertmanager_failures():
    """Alertmanager down or refusing: one line, exit 1 (its URL may carry credentials: never shown)."""
    try:
        yield
    except alertmanager.AlertmanagerError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
@friendly_errors
def balances(as_json: bool, wide: bool) -> None:
    """Check every balance now (GetBalance, GetPartnerBalance), alert, and print a table."""

    settings = load_settings()
    client = open_client(settings)
    engine = open_engine(settings)
    with client:
        readings = service.check_balances(engine, client, settings)
    deliver(engine, settings)
    push_quietly(engine, settings)
    narrow = ["subject", "balance", "threshold", "days_left", "alerts", "error"]
    if as_json:
        echo_json_lines(_row(r) for r in readings)
    elif len(readings) <= DETAIL_READINGS:
        print_table("balances", [_row(r) for r in readings], None if wide else narrow, wide=wide)
    else:
        _print_summary(readings, narrow, wide)
    if any(r.error for r in readings):
        raise click.ClickException("some balances could not be read; see the error column")


DETAIL_READINGS = 200  # up to this many, a row each; past it, the readings worth a look and the counts


def _row(reading: service.BalanceReading) -> dict:
    r = reading
    return {"subject": r.subject, "balance": r.balance, "threshold": r.threshold, "daily_use": r.daily_use,
            "days_left": r.days_left, "alerts": ", ".join(r.alerts), "error": r.error}  # fmt: skip


def _print_summary(readings: list[service.BalanceReading], narrow: list[str], wide: bool) -> None:
    """A row for each reading that failed or moved an alert (the first DETAIL_READINGS of them),
    then the counts: a hundred thousand rows help nobody at a terminal."""
    notable = [r for r in readings if r.error or r.alerts]
    shown = notable[:DETAIL_READINGS]
    if shown:
        title = "balances not read or whose alerts moved" + (
            f" (the first {len(shown):,} of {len(notable):,})" if len(notable) > len(shown) else ""
        )
        print_table(title, [_row(r) for r in shown], None if wide else narrow, wide=wide)
    read = [r for r in readings if r.balance is not None]
    under = sum(1 for r in read if r.balance < r.threshold)
    moved = sum(1 for r in readings if r.alerts)
    click.echo(f"{len(readings):,} balances checked: {len(read):,} read, {len(readings) - len(read):,} not read, "
               f"{under:,} under their threshold; alerts moved for {moved:,}")  # fmt: skip
    click.echo("every reading: ledger balances --json; the alerts firing now: ledger alerts list --firing")


@click.group()
def alerts() -> None:
    """Low-balance, runway and stuck-item alerts."""


@alerts.command("list")
@click.option("--firing", is_flag=True, help="Only firing alerts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
@friendly_errors
def list_(firing: bool, as_json: bool, wide: bool) -> None:
    """List alerts, their states and what each says (--wide: since when, values, notifications)."""
    rows = service.list_alerts(open_engine(), firing_only=firing)
    narrow = ["subject", "rule", "state", "summary"]  # the summary keeps the room a time would take
    echo_json(rows) if as_json else print_table("alerts", rows, None if wide else narrow, wide=wide)


@alerts.command()
@click.argument("corp_num", required=False)
@click.option("--rule", help=f"Only this rule ({', '.join(service.RULES)}); without CORP_NUM, for every member.")
@click.option("--for", "duration", required=True, help="How long: 30m, 12h, 2d, 1w (at most a year).")
@click.option("--comment", "-m", default="no reason given", help="Why; shown with the silence.")
@click.option("--by", "created_by", default=None, help="Who sets it (default: your login name).")
@friendly_errors
def mute(corp_num: str | None, rule: str | None, duration: str, comment: str, created_by: str | None) -> None:
    """Silence notifications of a member ('partner' for the partner's), of a rule, or both."""
    span = service.parse_duration(duration)
    subject = None if corp_num is None else "partner" if corp_num == "partner" else validation.corp_num(corp_num, "mute")
    settings = load_settings()
    with _alertmanager_failures():
        row = service.silence(open_engine(settings), subject=subject, rule=rule, duration=span, comment=comment,
                              created_by=created_by or getpass.getuser(), settings=settings)  # fmt: skip
    what = " ".join(x for x in (row.subject, row.rule and f"rule {row.rule}") if x)
    also = f" (Alertmanager silence {row.alertmanager_silence_id})" if row.alertmanager_silence_id else ""
    click.echo(f"silence {row.id}: {what} muted until {kst_time(row.ends_at)} KST{also}")


@alerts.command()
@click.option("--all", "include_ended", is_flag=True, help="Ended silences too.")
@click.option("--json", "as_json", is_flag=True)
@wide_option
@friendly_errors
def mutes(include_ended: bool, as_json: bool, wide: bool) -> None:
    """List silences in force (who set them, why, until when); with Alertmanager configured,
    its silences too, whoever made them."""
    settings = load_settings()
    rows = service.list_silences(open_engine(settings), include_ended=include_ended)
    with _alertmanager_failures():
        remote = alertmanager.list_silences(settings) if settings.alertmanager_url else []
    if as_json:
        echo_json([{"source": "ledger", **r} for r in rows] + [{"source": "alertmanager", **r} for r in remote])
        return
    narrow = ["id", "subject", "rule", "ends_at", "comment"]
    print_table("silences", rows, None if wide else narrow, wide=wide)
    if settings.alertmanager_url:
        print_table("alertmanager silences", remote, wide=wide)


@alerts.command()
@click.argument("silence_id", metavar="ID", type=int)
@friendly_errors
def unmute(silence_id: int) -> None:
    """End a silence now (its ID from `ledger alerts mutes`)."""
    settings = load_settings()
    with _alertmanager_failures():
        service.unsilence(open_engine(settings), silence_id, settings=settings)
    click.echo(f"silence {silence_id} ended")


@alerts.command()
@click.option("--status", type=click.Choice(["pending", "sent", "failed"]), help="Only notifications in this state.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True)
@wide_option
@friendly_errors
def outbox(status: str | None, limit: int, as_json: bool, wide: bool) -> None:
    """Notifications, newest first: channel, state, attempts, and why a failed one failed."""
    rows = service.list_outbox(open_engine(), limit=limit, status=status)
    if as_json:
        echo_json(rows)
    else:
        narrow = ["id", "channel", "status", "attempts", "next_attempt_at", "last_error"]
        print_table("outbox", rows, None if wide else narrow, wide=wide)


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


@alerts.command()
@click.option("--port", default=9095, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 for Alertmanager on another host.")
@friendly_errors
def relay(port: int, host: str) -> None:
    """Receive Alertmanager's webhook at /alertmanager (deploy/alertmanager/alertmanager.yml's `ops`
    receiver): a log line per alert, and a message to LEDGER_ALERT_WEBHOOK_URL (Slack-compatible)
    when it is set."""

    settings = load_settings()
    logs.configure(settings, default_level="INFO")
    try:
        server = make_relay_server(host, port, settings)
    except OSError as exc:
        raise click.ClickException(f"--port: cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"relaying Alertmanager's notifications posted to http://{host}:{server.server_address[1]}/alertmanager",
               err=True)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
