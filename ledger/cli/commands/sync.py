"""`ledger sync` and `ledger status`."""

from __future__ import annotations

import os
import sys
import time

import click

from ledger.cli.errors import EXIT_INTERRUPTED, friendly_errors
from ledger.cli.options import iso_date, wide_option
from ledger.cli.output import echo_json, print_table
from ledger.cli.runtime import load_settings, open_client, open_engine
from ledger.popbill import validation
from ledger.sync.display import result_rows, stopped_summary, totals_line
from ledger.sync.models import KINDS
from ledger.sync.runner import SyncStopped, run_sync
from ledger.sync.status import sync_status
from ledger.sync.windows import SyncOptions

KIND_CHOICES = click.Choice(list(KINDS))


@click.command()
@click.option("--member", "members", multiple=True, metavar="CORPNUM", help="Only this member (repeatable).")
@click.option("--kind", "kinds", multiple=True, type=KIND_CHOICES, help="Only this history (repeatable).")
@click.option("--since", callback=iso_date, metavar="YYYY-MM-DD", help="Start here instead of the high-water mark.")
@click.option("--full", is_flag=True, help="Walk the whole refund history, not just the newest pages.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(1, 256), help="Members synced at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@wide_option
@friendly_errors
def sync(members, kinds, since, full, jobs, as_json, wide) -> None:
    """Page the members' histories from Popbill into the ledger. Ctrl-C stops after the page
    in hand (exit 130); the next sync goes on from there."""

    members = [validation.corp_num(corp, "sync") for corp in members]  # bad input first, before anything else
    settings = load_settings()
    client = open_client(settings)  # before the database: a configuration Popbill must not see is said once
    engine = open_engine(settings)
    started = time.perf_counter()
    try:
        with client:
            results = run_sync(
                engine, client, corp_nums=list(members), kinds=tuple(kinds) or KINDS, since=since, full=full,
                settings=settings, options=SyncOptions.from_settings(settings), jobs=jobs,
                show_progress=sys.stdout.isatty() and not as_json,
            )  # fmt: skip
    except SyncStopped as stopped:
        click.echo(stopped_summary(stopped.results), err=True)
        if stopped.forced:  # a request still hangs in a thread: do not wait for it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        raise SystemExit(EXIT_INTERRUPTED) from None
    rows = result_rows(results)
    if as_json:
        echo_json([{**row, "quarantined": r.quarantined} for row, r in zip(rows, results, strict=True)])
    else:
        narrow = ["corp_num", "kind", "status", "pages", "inserted", "updated", "error"]
        print_table("sync", rows, None if wide else narrow, wide=wide)
        for r in results:
            if r.status == "skipped":
                click.echo(f"{r.corp_num} {r.kind}: {r.error}, skipped")
            if r.quarantined:
                click.echo(f"{r.corp_num} {r.kind}: {r.quarantined} rows refused, kept in quarantined_rows "
                           "(ledger reconcile reports them)")  # fmt: skip
        click.echo(totals_line(results, time.perf_counter() - started))
    failed = [r for r in results if r.status == "failed"]
    blocked = [r for r in results if r.locked_by_other]
    if failed or blocked:
        parts = [f"{len(failed)} of {len(results)} syncs failed"] if failed else []
        parts += [f"{len(blocked)} skipped for a lock held by something other than a sync"] if blocked else []
        raise click.ClickException("; ".join(parts) + "; see the error column")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
@friendly_errors
def status(as_json: bool, wide: bool) -> None:
    """Last sync per member and kind, rows held, recent failures."""

    rows = sync_status(open_engine())
    if as_json:
        echo_json(rows)
    else:
        narrow = ["corp_num", "kind", "last_status", "last_finished_at", "rows_held"]
        wide_columns = [
            "corp_num", "name", "kind", "last_status", "last_finished_at", "high_water", "rows_held", "failures_7d",
            "last_error",
        ]  # fmt: skip
        print_table("sync status", rows, wide_columns if wide else narrow, wide=wide)
