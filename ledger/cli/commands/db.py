"""`ledger db ...`: schema management, a SQL shell and the URL for other tools."""

from __future__ import annotations

import sys

import click

from ledger.cli.errors import CommandFailed, friendly_errors
from ledger.cli.output import echo_json, print_table
from ledger.cli.runtime import load_settings, open_engine
from ledger.db import migrate, roles
from ledger.db.engine import database_url
from ledger.db.shell import find_psql, public_url, python_shell, run_psql
from ledger.kst import KST
from ledger.retention.policy import Policy
from ledger.retention.service import prune as run_prune


@click.group()
def db() -> None:
    """Manage the ledger database."""


@db.command()
@friendly_errors
def upgrade() -> None:
    """Create or migrate the ledger tables to the newest version."""

    engine = open_engine()
    migrate.upgrade(engine)
    click.echo("database is at the newest version")


@db.command("create-reader")
@click.argument("role")
@friendly_errors
def create_reader(role: str) -> None:
    """Create ROLE, which can SELECT every ledger table and view and do nothing else.

    The password is asked for on a terminal, or read from LEDGER_READER_PASSWORD (never from
    the command line, which other users of the machine can see); it is sent to the server
    already hashed (SCRAM-SHA-256). The role holds at most LEDGER_READER_CONNECTION_LIMIT (10)
    connections at once. An existing role with more than read rights is refused."""

    settings = load_settings()
    password = settings.reader_password.reveal() if settings.reader_password else None
    if password is None and sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True, default="", show_default=False)
    roles.create_reader(open_engine(settings), role, password or None,
                        connection_limit=settings.reader_connection_limit)  # fmt: skip
    click.echo(
        f"{role} can now read the ledger, with at most {settings.reader_connection_limit} connections at once"
        " (LEDGER_READER_CONNECTION_LIMIT)" + ("" if password else "; no password set: it logs in by other means")
    )


@db.command()
@click.option("-c", "--command", "command", metavar="SQL", help="Run this SQL and exit.")
@click.option("--python", "use_python", is_flag=True, help="Use the built-in SQL prompt even when psql is installed.")
@friendly_errors
def shell(command: str | None, use_python: bool) -> None:
    """Open psql (or a built-in SQL prompt when psql is absent) on the ledger database."""

    settings = load_settings()
    url = database_url(settings)  # starts the embedded server when that is the database
    psql = None if use_python else find_psql()
    if psql is None:
        code = python_shell(open_engine(settings), command, lambda rows: print_table("", rows))
    else:
        code = run_psql(psql, url, command)
    raise SystemExit(code)


@db.command()
@friendly_errors
def url() -> None:
    """Print the database URL for psql, DBeaver or Excel, without its password."""

    settings = load_settings()
    click.echo(public_url(database_url(settings)))
    if settings.database_url is None:
        click.echo(
            "note: the embedded database listens on a socket only while a ledger command runs;"
            " `ledger sandbox up` keeps one up on a TCP port",
            err=True,
        )


@db.command()
@click.option("--dry-run", is_flag=True, help="Count what would go, per table; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def prune(dry_run: bool, as_json: bool) -> None:
    """Delete what the retention settings let go: old sync runs, balance readings thinned to
    the last of each day, sent notifications, stale heartbeats and schedule claims. Small
    batches, each its own transaction, beside a running sync. What reconcile, statements,
    alerts and `ledger status` read is never deleted (README "Retention")."""
    settings = load_settings()
    policy = Policy.from_settings(settings)
    report = run_prune(open_engine(settings), policy, dry_run=dry_run)
    verb = "would go" if dry_run else "deleted"
    rows = [{"table": line["table"], "rule": line["rule"], "before": _day_or_moment(line["before"]), verb: line["rows"],
             **({} if dry_run else {"batches": line["batches"]}),
             "note": _note(line)}
            for line in report.summary()]  # fmt: skip
    if as_json:
        echo_json(rows)
    else:
        print_table("retention" + (" (dry run)" if dry_run else ""), rows)
        totals = ", ".join(f"{table} {n:,}" for table, n in report.rows_by_table().items())
        click.echo(f"{verb}: {totals} ({report.seconds:.1f} s)")
    if not report.complete:
        raise CommandFailed("some rules stopped early (see note); the next run goes on")


def _note(line: dict) -> str:
    if line["stopped"]:
        return line["stopped"]
    if line["before"] is None:
        return "off"
    return f"{line['held']:,} held by another transaction: next run" if line["held"] else ""


def _day_or_moment(moment):
    """A cutoff at a Korean midnight is a day; others keep their time."""
    if moment is None:
        return None
    local = moment.astimezone(KST)
    return local.date() if local.time() == local.time().min else moment
