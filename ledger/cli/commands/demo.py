"""`ledger demo`: the whole pipeline with no configuration at all."""

from __future__ import annotations

import dataclasses
import time

import click
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger.alerts.service import check_balances
from ledger.cli.errors import EXIT_INTERRUPTED, InputError, friendly_errors
from ledger.cli.output import print_table
from ledger.cli.runtime import load_settings, open_engine
from ledger.cli.summaries import print_reconciliation, statement_rows, write_rows
from ledger.db import migrate
from ledger.kst import today_kst
from ledger.members.service import MemberInput, add_member, list_members
from ledger.paths import typed_path
from ledger.popbill import PopbillClient
from ledger.reconcile.service import reconcile
from ledger.reports.statement import monthly_statement
from ledger.sandbox.samples import SAMPLE_MEMBERS
from ledger.settings import Settings
from ledger.simulator import SimConfig, Simulator
from ledger.sync.display import counted, result_rows, stopped_summary, totals_line
from ledger.sync.runner import SyncStopped, run_sync

DEMO_MEMBERS = SAMPLE_MEMBERS

SAMPLE_QUERY = """\
SELECT m.corp_num, m.name, u.item_code,
       count(*) AS transactions, sum(abs(u.tx_point)) AS points_used
FROM usages u JOIN members m ON m.id = u.member_id
WHERE u.tx_type = 2  -- use (사용)
  AND u.tx_dt >= date_trunc('month', now() AT TIME ZONE 'Asia/Seoul') AT TIME ZONE 'Asia/Seoul'
GROUP BY m.corp_num, m.name, u.item_code
ORDER BY m.corp_num, u.item_code"""


@click.command()
@click.option("--days", default=120, show_default=True, type=click.IntRange(1, 3650), help="Days of simulated history.")
@click.option(
    "--usage-per-day", default=40.0, show_default=True, type=click.FloatRange(0), help="Usage rows a day per member."
)
@click.option(
    "--use-configured-database", is_flag=True,
    help="Write into LEDGER_DATABASE_URL instead of a demo database of its own under LEDGER_HOME/demo.",
)  # fmt: skip
@friendly_errors
def demo(days: int, usage_per_day: float, use_configured_database: bool) -> None:
    """Start a simulated Popbill and a database, add five members, sync them, check their
    balances, reconcile, and print a statement. The demo's own database starts empty on every
    run, so the same options always show the same world and other options never mix with it."""
    settings = load_settings()
    configured = settings.database_url is not None
    corp_nums = [corp for corp, _ in DEMO_MEMBERS]
    if use_configured_database:
        engine = open_engine(settings)
        migrate.upgrade(engine)
        _refuse_a_ledger_with_the_demo_members(engine, corp_nums)
    else:
        settings = dataclasses.replace(settings, ledger_home=settings.ledger_home / "demo", database_url=None)
        click.echo(f"starting the embedded PostgreSQL under {typed_path(settings.ledger_home)} ...")
        engine = open_engine(settings)
        migrate.rebuild(engine)  # the last demo's world (other --days, another day) never mixes with this one
    with Simulator(SimConfig(seed=1, history_days=days, usage_per_day=usage_per_day)) as sim:
        click.echo(f"simulated Popbill listening on {sim.url}")
        with Session(engine) as session, session.begin():
            for corp, name in DEMO_MEMBERS:
                add_member(session, MemberInput(corp, name=name))
        # The sandbox credentials the simulator accepts: never the user's real key.
        with PopbillClient(Settings().with_hosts(sim.url)) as client:
            started = time.perf_counter()
            try:
                tally = run_sync(
                    engine, client, corp_nums=corp_nums, kinds=("payments", "usage", "refunds"), show_progress=True
                )
            except SyncStopped as stopped:
                click.echo(stopped_summary(stopped.tally), err=True)
                raise SystemExit(EXIT_INTERRUPTED) from None
            elapsed = time.perf_counter() - started
            check_balances(engine, client, dataclasses.replace(settings, alert_runway_days=0))
    columns = ["corp_num", "kind", "status", "pages", "inserted", "updated", "unchanged"]
    results = tally.results
    print_table("sync summary", result_rows(results), columns)
    click.echo(totals_line(tally, elapsed))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise click.ClickException(f"{counted(len(failed), 'sync')} failed")

    click.echo("\nTry this query on the ledger (usage this month by member and service):\n")
    click.echo(SAMPLE_QUERY + ";\n")
    with engine.connect() as conn:
        sample = [dict(r._mapping) for r in conn.execute(text(SAMPLE_QUERY))]
    print_table("usage this month", sample[:20])

    click.echo("\nReconciling the ledger against the balances Popbill reported:")
    print_reconciliation(reconcile(engine, settings, corp_nums=corp_nums))
    statement = monthly_statement(engine, corp_nums[0], today_kst())
    click.echo("")
    write_rows(*statement_rows(statement, "en"), "table", "en", None, f"statement {corp_nums[0]} {statement.month:%Y-%m}")
    month = f"{statement.month:%Y-%m}"
    click.echo("\nNext (each line pastes as it is):")
    # The demo's database is not the one commands use by default: name it on each line.
    on_demo_db = "" if use_configured_database else _demo_database_prefix(settings, configured)
    click.echo(f"  {on_demo_db}ledger db shell    # then paste the query above")
    click.echo(
        f"  {on_demo_db}ledger report statement --member {corp_nums[0]} --month {month} --format xlsx --out s.xlsx"
    )
    click.echo("  ledger sandbox up    # a simulated Popbill and a database that stay up: README, First hour")


def _refuse_a_ledger_with_the_demo_members(engine, corp_nums: list[str]) -> None:
    """The demo's histories are generated for this run: synced into a ledger that already holds
    other ones for the same members, they would mix into nonsense. A configured database is
    never emptied, so the demo refuses one that has its members."""
    with Session(engine) as session:
        present = sorted(m.corp_num for m in list_members(session) if m.corp_num in corp_nums)
    if present:
        raise InputError(
            f"--use-configured-database: LEDGER_DATABASE_URL already holds the demo's members ({', '.join(present)}),"
            " whose histories would mix with this run's; use an empty database, or run `ledger demo` without"
            " --use-configured-database (a database of its own, new on every run)"
        )


def _demo_database_prefix(settings, configured: bool) -> str:
    """Environment assignments that point a pasted command at the demo's embedded database."""
    blank_url = "LEDGER_DATABASE_URL= " if configured else ""
    return f"{blank_url}LEDGER_HOME={typed_path(settings.ledger_home)} "
