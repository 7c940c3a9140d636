"""`ledger sandbox up|down|status|env|clock`: a simulated Popbill and a database that stay up."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import click

from ledger.cli.main import friendly_errors, load_settings
from ledger.cli.paths import typed_path
from ledger.sandbox.state import (
    SandboxState,
    clear_state,
    previous_state,
    read_state,
    running_state,
    sandbox_home,
)

START_TIMEOUT = 120.0  # seconds; a first start runs initdb


def _require_running(ledger_home: Path) -> SandboxState:
    state = running_state(ledger_home)
    if state is None:
        raise click.ClickException("the sandbox is not running: start it with `ledger sandbox up`")
    return state


def _sandbox_settings(state: SandboxState):
    from ledger.settings import Settings

    return Settings.from_env(state.environment())


@click.group()
def sandbox() -> None:
    """A simulated Popbill and a PostgreSQL of their own that stay up in the background.

    \b
    ledger sandbox up && eval "$(ledger sandbox env)"
    ledger sandbox down
    """


@sandbox.command()
@click.option("--db-port", default=0, type=click.IntRange(0, 65535), help="PostgreSQL port [default: a free one].")
@click.option("--sim-port", default=0, type=click.IntRange(0, 65535), help="Simulator port [default: a free one].")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the simulated histories.")
@click.option("--days", default=120, show_default=True, type=click.IntRange(1, 3650), help="Days of history.")
@click.option(
    "--usage-per-day", default=40.0, show_default=True, type=click.FloatRange(0), help="Usage rows a day per member."
)
@click.option("--no-sync", is_flag=True, help="Add the sample members but do not sync them.")
@friendly_errors
def up(db_port: int, sim_port: int, seed: int, days: int, usage_per_day: float, no_sync: bool) -> None:
    """Start the sandbox, add five sample members and sync them.

    \b
    Example:
      ledger sandbox up && eval "$(ledger sandbox env)" && ledger status
    """
    home = load_settings().ledger_home
    state = running_state(home)
    if state is not None:
        click.echo(f"the sandbox is already running (pid {state.pid})", err=True)
    else:
        state = _start(home, db_port, sim_port, seed, days, usage_per_day)
    click.echo(f"database   {state.shown_url}")
    click.echo(f"simulator  {state.simulator_url}")
    _populate(state, sync=not no_sync)
    click.echo('\nthe sandbox is up; point this shell at it with:\n\n  eval "$(ledger sandbox env)"\n')
    click.echo("then try `ledger status`; `ledger sandbox down` stops it.")


def _start(home: Path, db_port: int, sim_port: int, seed: int, days: int, usage_per_day: float) -> SandboxState:
    from ledger.sandbox import postgres

    killed = read_state(home)  # a supervisor that was killed: stop the server it left behind
    if killed is not None:
        postgres.stop(Path(killed.pgdata))
        clear_state(home)
    previous = previous_state(home)
    if previous is not None:  # the same ports as last time, when they are free
        db_port, sim_port = db_port or previous.db_port, sim_port or previous.sim_port
    folder = sandbox_home(home)
    folder.mkdir(parents=True, exist_ok=True)
    click.echo(f"starting the sandbox under {typed_path(folder)} ...", err=True)
    log_path = folder / "sandbox.log"
    command = [
        sys.executable, "-m", "ledger", "sandbox", "serve",
        "--db-port", str(db_port), "--sim-port", str(postgres.free_port(sim_port)),
        "--seed", str(seed), "--days", str(days), "--usage-per-day", str(usage_per_day),
    ]  # fmt: skip
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state(home)
        if state is not None and state.pid == child.pid:
            return state
        if child.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise click.ClickException(f"the sandbox did not start: {tail[0]} (log: {typed_path(log_path)})")
        time.sleep(0.1)
    child.terminate()
    raise click.ClickException(f"the sandbox did not start within {START_TIMEOUT:.0f} s (log: {typed_path(log_path)})")


def _populate(state: SandboxState, *, sync: bool) -> None:
    from sqlalchemy.orm import Session

    from ledger.db import migrate
    from ledger.db.engine import make_engine
    from ledger.members.service import MemberInput, add_member, list_members
    from ledger.popbill import PopbillClient
    from ledger.sandbox.samples import SAMPLE_MEMBERS
    from ledger.sync.cli import run_sync

    settings = _sandbox_settings(state)
    engine = make_engine(settings)
    try:
        migrate.upgrade(engine)
        with Session(engine) as session, session.begin():
            known = {m.corp_num for m in list_members(session)}
            added = [add_member(session, MemberInput(c, name=n)) for c, n in SAMPLE_MEMBERS if c not in known]
        click.echo(f"members    {len(SAMPLE_MEMBERS)} sample members ({len(added)} added)")
        if not sync:
            return
        with PopbillClient(settings) as client:
            started = time.perf_counter()
            results = run_sync(
                engine,
                client,
                corp_nums=[c for c, _ in SAMPLE_MEMBERS],
                kinds=("payments", "usage", "refunds"),
                show_progress=sys.stderr.isatty(),
            )
        failed = [r for r in results if r.status == "failed"]
        rows = sum(r.rows for r in results)
        click.echo(f"synced     {rows} rows in {time.perf_counter() - started:.1f} s, {len(failed)} failed")
        if failed:
            raise click.ClickException(f"{len(failed)} syncs failed; see `ledger status`")
    finally:
        engine.dispose()


@sandbox.command()
@friendly_errors
def down() -> None:
    """Stop the sandbox's simulator and PostgreSQL (the data stays for the next `up`)."""
    import psutil

    from ledger.sandbox import postgres

    home = load_settings().ledger_home
    state = read_state(home)
    if state is None:
        click.echo("the sandbox is not running")
        return
    try:
        supervisor = psutil.Process(state.pid)
        supervisor.terminate()
        supervisor.wait(60)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        supervisor.kill()
    orphan = postgres.stop(Path(state.pgdata))
    clear_state(home)
    click.echo("the sandbox is down" + (" (its PostgreSQL was left running; stopped it)" if orphan else ""))


@sandbox.command()
@friendly_errors
def status() -> None:
    """Say whether the sandbox is running, where, and the simulator's today. Exit 1 when down."""
    import requests

    home = load_settings().ledger_home
    state = running_state(home)
    if state is None:
        click.echo("the sandbox is not running")
        raise SystemExit(1)
    try:
        now = requests.get(f"{state.simulator_url}/_sim/clock", timeout=5).json()["now"]
        clock = f"simulated today {now[:10]}"
    except (requests.RequestException, ValueError, KeyError):
        clock = "not answering"
    click.echo(f"running    pid {state.pid}, since {state.started_at}")
    click.echo(f"database   {state.shown_url}")
    click.echo(f"simulator  {state.simulator_url} ({clock})")
    click.echo(f"data       {typed_path(Path(state.pgdata))}")
    click.echo(f"password   in {typed_path(sandbox_home(home) / 'db-password')} (LEDGER_DATABASE_URL carries it)")


@sandbox.command()
@click.option("--unset", is_flag=True, help="Print the lines that undo it instead.")
@friendly_errors
def env(unset: bool) -> None:
    """Print the shell lines that point every command at the sandbox.

    \b
    Example:
      eval "$(ledger sandbox env)"
    """
    if unset:
        click.echo("unset " + " ".join(SandboxState(0, "", "", 0, 0, "", "").environment()))
        return
    state = _require_running(load_settings().ledger_home)
    for name, value in state.environment().items():
        click.echo(f"export {name}={shlex.quote(value)}")


@sandbox.command()
@click.option("--advance-days", required=True, type=click.IntRange(1, 3650), help="Days to move the clock forward.")
@friendly_errors
def clock(advance_days: int) -> None:
    """Move the simulator's clock forward: new usage appears, and the next sync reads up to it."""
    import requests

    state = _require_running(load_settings().ledger_home)
    now = requests.post(f"{state.simulator_url}/_sim/clock", json={"advance_days": advance_days}, timeout=10)
    click.echo(f"simulated today is now {now.json()['now'][:10]}")


@sandbox.command(hidden=True)
@click.option("--db-port", type=int, required=True)
@click.option("--sim-port", type=int, required=True)
@click.option("--seed", type=int, required=True)
@click.option("--days", type=int, required=True)
@click.option("--usage-per-day", type=float, required=True)
def serve(**options) -> None:
    """The background process behind `up` (not for direct use)."""
    import logging

    from ledger.sandbox.supervisor import serve as run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(load_settings().ledger_home, **options)
