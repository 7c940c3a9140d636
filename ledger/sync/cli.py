"""`ledger sync` and `ledger status`."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

import click

from ledger.cli.main import EXIT_INTERRUPTED, friendly_errors, load_settings, open_engine
from ledger.cli.options import iso_date, wide_option
from ledger.cli.output import echo_json, print_table
from ledger.sync.display import totals_line
from ledger.sync.models import KINDS

KIND_CHOICES = click.Choice(list(KINDS))


# After Ctrl-C or SIGTERM, syncs get this long to reach a page boundary; a sync still waiting
# on Popbill then has its run closed as interrupted and its page rolled back by the exit.
STOP_GRACE_SECONDS = 1.5


class SyncStopped(Exception):
    """Ctrl-C or SIGTERM stopped the sync; `forced` when some sync had to be abandoned mid-request."""

    def __init__(self, results, forced: bool) -> None:
        super().__init__("interrupted")
        self.results, self.forced = results, forced


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, force: threading.Event):
    """SIGINT and SIGTERM ask the syncs to stop; a second one stops waiting for them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        (force if stop.is_set() else stop).set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_sync(engine, client, *, corp_nums, kinds, show_progress: bool, jobs: int = 1, settings=None, **options):
    """sync_all in a thread the main thread watches: live progress on a terminal, and a quick,
    clean stop on Ctrl-C/SIGTERM (raises SyncStopped once the syncs have stopped, or after
    STOP_GRACE_SECONDS when one is stuck in a request). A member whose sync loses the database
    is tried again for a while, then reported failed while the others go on (sync/resilient.py)."""
    from functools import partial

    from sqlalchemy.orm import Session

    from ledger.db.transient import retry_transient
    from ledger.members.service import get_member
    from ledger.settings import Settings
    from ledger.sync.display import SyncProgress
    from ledger.sync.interrupt import close_interrupted_runs
    from ledger.sync.resilient import sync_member_kinds_resilient
    from ledger.sync.service import members_to_sync, sync_all

    settings = settings or Settings()  # the retry bounds' defaults
    options["sync"] = partial(sync_member_kinds_resilient, settings=settings)

    def resolve() -> list[str]:
        if not corp_nums:
            return members_to_sync(engine)  # every active member
        with Session(engine) as session:
            return [get_member(session, c).corp_num for c in corp_nums]

    # The database may be restarting right now: wait for it a while, as each sync would.
    corp_nums = retry_transient(resolve, attempts=settings.db_retry_attempts, max_seconds=settings.db_retry_seconds)
    if not corp_nums:
        return []
    total = len(corp_nums) * len(kinds)
    stop, force = threading.Event(), threading.Event()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["results"] = sync_all(
                engine, client, corp_nums=corp_nums or None, kinds=kinds, jobs=jobs,
                progress=tracker.page, on_result=tracker.done, stop=stop, **options,
            )  # fmt: skip
        except BaseException as exc:  # raised again in the main thread
            outcome["error"] = exc

    with SyncProgress(total, show=show_progress) as tracker, _stop_on_signals(stop, force):
        worker = threading.Thread(target=work, name="sync", daemon=True)
        worker.start()
        deadline = None
        while worker.is_alive():
            worker.join(0.1)
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + STOP_GRACE_SECONDS
            if force.is_set() or (deadline is not None and time.monotonic() > deadline):
                break
    if "error" in outcome:
        raise outcome["error"]
    if worker.is_alive():  # some sync is stuck in a request: close its run; the exit rolls back its page
        close_interrupted_runs(engine, tracker.running())
        raise SyncStopped(_all_results(tracker, corp_nums, kinds, engine), forced=True)
    if stop.is_set():
        raise SyncStopped(outcome["results"], forced=False)
    return outcome["results"]


def _all_results(tracker, corp_nums, kinds, engine):
    """What each (member, kind) came to when the process had to stop before the syncs did."""
    from ledger.sync.service import SyncResult, members_to_sync

    results = []
    for corp in members_to_sync(engine, corp_nums or None):
        for kind in kinds:
            result = tracker.results.get((corp, kind)) or SyncResult(corp, kind, status="not started")
            if result.status == "running":
                result.status = "interrupted"
            results.append(result)
    return results


def stopped_summary(results) -> str:
    """One line: what an interrupted sync kept."""
    kept = [r for r in results if r.pages]
    counts = {s: sum(r.status == s for r in results) for s in ("succeeded", "interrupted", "not started")}
    return (
        f"interrupted: kept {sum(r.pages for r in kept):,} whole pages ({sum(r.rows for r in kept):,} rows) "
        f"from {len(kept)} syncs; {counts['succeeded']} finished, {counts['interrupted']} interrupted, "
        f"{counts['not started']} not started. Run `ledger sync` again to complete the ledger."
    )


def summarize(results) -> list[dict]:
    return [
        {"corp_num": r.corp_num, "kind": r.kind, "status": r.status, "pages": r.pages, "api_calls": r.api_calls,
         "inserted": r.inserted, "updated": r.updated, "unchanged": r.unchanged, "error": r.error}
        for r in results
    ]  # fmt: skip


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
    from ledger.popbill import PopbillClient
    from ledger.sync.processes import SyncStoppedInProcesses, processes_for, sync_in_processes
    from ledger.sync.windows import SyncOptions

    settings = load_settings()
    engine = open_engine(settings)
    started = time.perf_counter()
    how = dict(
        corp_nums=list(members), kinds=tuple(kinds) or KINDS, since=since, full=full,
        options=SyncOptions.from_settings(settings), jobs=jobs, show_progress=sys.stdout.isatty() and not as_json,
    )  # fmt: skip
    try:
        processes = processes_for(engine, list(members), processes, jobs)
        if processes > 1:
            results = sync_in_processes(engine, settings, processes=processes, **how)
        else:
            with PopbillClient(settings) as client:
                results = run_sync(engine, client, settings=settings, **how)
    except (SyncStopped, SyncStoppedInProcesses) as stopped:
        click.echo(stopped_summary(stopped.results), err=True)
        if stopped.forced:  # a request still hangs in a thread: do not wait for it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        raise SystemExit(EXIT_INTERRUPTED) from None
    rows = summarize(results)
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
    from ledger.sync.status import sync_status

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
