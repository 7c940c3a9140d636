"""`ledger sync` and `ledger status`."""

from __future__ import annotations

import sys

import click

from ledger.cli.main import friendly_errors, load_settings, open_engine
from ledger.cli.options import iso_date
from ledger.cli.output import echo_json, print_table
from ledger.sync.models import KINDS

KIND_CHOICES = click.Choice(list(KINDS))


def run_sync(engine, client, *, corp_nums, kinds, show_progress: bool, settings=None, **options):
    """sync_all, with a live progress line (members and kinds done, pages, rows) on a terminal.
    A member whose sync loses the database is tried again for a while, then reported failed
    while the others go on (sync/resilient.py)."""
    from functools import partial

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from sqlalchemy.orm import Session

    from ledger.db.transient import retry_transient
    from ledger.members.service import get_member
    from ledger.settings import Settings
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
    if not show_progress:
        return sync_all(engine, client, corp_nums=corp_nums or None, kinds=kinds, **options)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"))
    with Progress(*columns, transient=True) as progress:
        total = len(corp_nums) * len(kinds)
        task = progress.add_task("syncing", total=total, detail="")
        done = {"pages": 0, "rows": 0}

        def on_page(result):
            pages, rows = done["pages"] + result.pages, done["rows"] + result.rows
            progress.update(task, detail=f"{result.corp_num} {result.kind}: {pages} pages, {rows} rows")

        def on_result(result):
            done["pages"] += result.pages
            done["rows"] += result.rows
            progress.advance(task)

        return sync_all(
            engine, client, corp_nums=corp_nums or None, kinds=kinds, progress=on_page, on_result=on_result, **options
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
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@friendly_errors
def sync(members, kinds, since, full, jobs, as_json) -> None:
    """Page the members' histories from Popbill into the ledger."""
    from ledger.popbill import PopbillClient
    from ledger.sync.windows import SyncOptions

    settings = load_settings()
    engine = open_engine(settings)
    with PopbillClient(settings) as client:
        results = run_sync(
            engine, client, corp_nums=list(members), kinds=tuple(kinds) or KINDS, since=since, full=full, settings=settings,
            options=SyncOptions.from_settings(settings), jobs=jobs, show_progress=sys.stdout.isatty() and not as_json,
        )  # fmt: skip
    rows = summarize(results)
    if as_json:
        echo_json([{**row, "quarantined": r.quarantined} for row, r in zip(rows, results, strict=True)])
    else:
        print_table("sync", rows)
        for r in results:
            if r.status == "skipped":
                click.echo(f"{r.corp_num} {r.kind}: {r.error}, skipped")
            if r.quarantined:
                click.echo(f"{r.corp_num} {r.kind}: {r.quarantined} rows refused, kept in quarantined_rows "
                           "(ledger reconcile reports them)")  # fmt: skip
    failed = [r for r in results if r.status == "failed"]
    blocked = [r for r in results if r.locked_by_other]
    if failed or blocked:
        parts = [f"{len(failed)} of {len(results)} syncs failed"] if failed else []
        parts += [f"{len(blocked)} skipped for a lock held by something other than a sync"] if blocked else []
        raise click.ClickException("; ".join(parts) + "; see the error column")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def status(as_json: bool) -> None:
    """Last sync per member and kind, rows held, recent failures."""
    from ledger.sync.status import sync_status

    rows = sync_status(open_engine())
    if as_json:
        echo_json(rows)
    else:
        print_table(
            "sync status", rows,
            ["corp_num", "kind", "last_status", "last_finished_at", "high_water", "rows_held", "failures_7d"],
        )  # fmt: skip
