"""`ledger sync` and `ledger status`."""

from __future__ import annotations

import logging
import os
import sys
import time

import click

from ledger.cli.errors import EXIT_INTERRUPTED, friendly_errors
from ledger.cli.options import iso_date, wide_option
from ledger.cli.output import JsonLines, echo_json, print_table
from ledger.cli.runtime import load_settings, open_client, open_engine
from ledger.kst import today_kst
from ledger.popbill import validation
from ledger.sync.display import result_rows, stopped_summary, totals_line
from ledger.sync.models import KINDS
from ledger.sync.outcomes import log_results
from ledger.sync.processes import processes_for, sync_in_processes
from ledger.sync.runner import SyncStopped, run_sync
from ledger.sync.status import sync_status
from ledger.sync.windows import SyncOptions

KIND_CHOICES = click.Choice(list(KINDS))


def check_since(since, earliest) -> None:
    """--since inside the data: not in the future, not before any row can be dated."""
    today = today_kst()
    if since > today:
        raise click.BadParameter(f"{since} is in the future (today in Korea is {today})", param_hint="--since")
    if since < earliest:
        raise click.BadParameter(f"{since} is before {earliest}, the earliest date a row may have "
                                 "(LEDGER_ROW_EARLIEST_DATE)", param_hint="--since")  # fmt: skip


@click.command()
@click.option("--member", "members", multiple=True, metavar="CORPNUM", help="Only this member (repeatable).")
@click.option("--kind", "kinds", multiple=True, type=KIND_CHOICES, help="Only this history (repeatable).")
@click.option("--since", callback=iso_date, metavar="YYYY-MM-DD", help="Start here instead of the high-water mark.")
@click.option("--full", is_flag=True, help="Walk the whole refund history, not just the newest pages.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(1, 256), help="Members synced at once.")
@click.option("--processes", type=click.IntRange(1, 64), metavar="N",
              help="Processes syncing members (default: one per CPU, at most one per member and per job); "
                   "they share --jobs and POPBILL_MAX_CONCURRENCY.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@wide_option
@friendly_errors
def sync(members, kinds, since, full, jobs, processes, as_json, wide) -> None:
    """Page the members' histories from Popbill into the ledger. Ctrl-C stops after the page
    in hand (exit 130); the next sync goes on from there."""
    members = [validation.corp_num(corp, "sync") for corp in members]  # bad input first, before anything else
    settings = load_settings()
    if since is not None:
        check_since(since, settings.row_earliest_date)
    client = open_client(settings)  # before the database: a configuration Popbill must not see is said once
    engine = open_engine(settings)
    started = time.perf_counter()
    stream = JsonLines() if as_json else None

    def ended(result) -> None:  # as each sync ends: its log line (as the worker's), its JSON
        log_results([result])
        if stream:
            stream.write({**result_rows([result])[0], "quarantined": result.quarantined})

    how = dict(
        corp_nums=list(members), kinds=tuple(kinds) or KINDS, since=since, full=full,
        options=SyncOptions.from_settings(settings), jobs=jobs, show_progress=sys.stdout.isatty() and not as_json,
        on_result=ended,
    )  # fmt: skip
    try:
        processes = processes_for(engine, list(members), processes, jobs)
        if processes > 1:
            client.close()  # each worker process opens its own
            tally = sync_in_processes(engine, settings, processes=processes, **how)
        else:
            with client:
                tally = run_sync(engine, client, settings=settings, **how)
    except SyncStopped as stopped:
        if stream:
            stream.close()
        click.echo(stopped_summary(stopped.tally), err=True)
        if stopped.forced:  # a request still hangs in a thread: do not wait for it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        raise SystemExit(EXIT_INTERRUPTED) from None
    if stream:
        stream.close()
    elif tally.keep_all:
        narrow = ["corp_num", "kind", "status", "pages", "inserted", "updated", "error"]
        print_table("sync", result_rows(tally.results), None if wide else narrow, wide=wide)
    else:  # thousands of members: a row per kind, then the syncs worth reading
        narrow = ["kind", "succeeded", "failed", "skipped", "inserted", "updated", "api_calls"]
        print_table("sync by kind", tally.rows_by_kind(), None if wide else narrow, wide=wide)
        failed = [r for r in tally.results if r.status == "failed"]
        if failed:
            print_table(f"failed syncs (first {min(len(failed), 20)} of {tally.count('failed'):,})",
                        result_rows(failed[:20]), ["corp_num", "kind", "error"], wide=wide)  # fmt: skip
    if not as_json:
        for r in tally.results:
            if r.status == "skipped":
                click.echo(f"{r.corp_num} {r.kind}: {r.error}, skipped")
            if r.quarantined:
                click.echo(f"{r.corp_num} {r.kind}: {r.quarantined} rows refused, kept in quarantined_rows "
                           "(ledger reconcile reports them)")  # fmt: skip
        if tally.not_kept:
            click.echo(f"... and {tally.not_kept:,} more syncs that failed, were skipped or quarantined rows "
                       "(see `ledger status`)")  # fmt: skip
        click.echo(totals_line(tally, time.perf_counter() - started))
    failed, blocked, syncs = tally.count("failed"), tally.locked_by_other, tally.total("syncs")
    if failed or blocked:
        parts = [f"{failed} of {syncs} syncs failed"] if failed else []
        parts += [f"{blocked} skipped for a lock held by something other than a sync"] if blocked else []
        message = "; ".join(parts) + "; see the error column"
        if settings.log_format == "json":  # stderr carries JSON lines only: the verdict is one of them
            logging.getLogger("ledger.sync").error(message)
            raise SystemExit(1)
        raise click.ClickException(message)


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
