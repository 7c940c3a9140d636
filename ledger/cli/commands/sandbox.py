"""`ledger sandbox up|down|status|env|clock`: a simulated Popbill and a database that stay up."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import click

from ledger.cli.errors import friendly_errors
from ledger.cli.runtime import load_settings
from ledger.paths import typed_path
from ledger.sandbox import service
from ledger.sandbox.state import SandboxState, running_state, sandbox_home
from ledger.sandbox.supervisor import serve as serve_sandbox


def _say(line: str) -> None:
    click.echo(line, err=True)


@click.group()
def sandbox() -> None:
    """A simulated Popbill and a PostgreSQL of their own that stay up in the background."""


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
    """Start the sandbox, add five sample members and sync them."""
    home = load_settings().ledger_home
    state = running_state(home)
    if state is not None:
        click.echo(f"the sandbox is already running (pid {state.pid})", err=True)
    else:
        state = service.start(home, db_port, sim_port, seed, days, usage_per_day, _say)
    click.echo(f"database   {state.shown_url}")
    click.echo(f"simulator  {state.simulator_url}")
    service.populate(state, sync=not no_sync, say=click.echo, show_progress=sys.stderr.isatty())
    click.echo('\nthe sandbox is up; point this shell at it with:\n\n  eval "$(ledger sandbox env)"\n')
    click.echo("then try `ledger status`; `ledger sandbox down` stops it.")


@sandbox.command()
@friendly_errors
def down() -> None:
    """Stop the sandbox's simulator and PostgreSQL (the data stays for the next `up`)."""
    click.echo(service.stop(load_settings().ledger_home))


@sandbox.command()
@friendly_errors
def status() -> None:
    """Say whether the sandbox is running, where, and the simulator's today. Exit 1 when down."""
    state = running_state(load_settings().ledger_home)
    if state is None:
        click.echo("the sandbox is not running")
        raise SystemExit(1)
    today = service.simulated_today(state)
    clock = f"simulated today {today}" if today else "not answering"
    click.echo(f"running    pid {state.pid}, since {state.started_at}")
    click.echo(f"database   {state.shown_url}")
    click.echo(f"simulator  {state.simulator_url} ({clock})")
    click.echo(f"data       {typed_path(Path(state.pgdata))}")
    password_file = sandbox_home(load_settings().ledger_home) / "db-password"
    click.echo(f"password   in {typed_path(password_file)} (LEDGER_DATABASE_URL carries it)")


@sandbox.command()
@click.option("--unset", is_flag=True, help="Print the lines that undo it instead.")
@friendly_errors
def env(unset: bool) -> None:
    """Print the shell lines that point every command at the sandbox."""
    if unset:
        click.echo("unset " + " ".join(SandboxState(0, "", "", 0, 0, "", "").environment()))
        return
    state = service.require_running(load_settings().ledger_home)
    for name, value in state.environment().items():
        click.echo(f"export {name}={shlex.quote(value)}")


@sandbox.command()
@click.option("--advance-days", required=True, type=click.IntRange(1, 3650), help="Days to move the clock forward.")
@friendly_errors
def clock(advance_days: int) -> None:
    """Move the simulator's clock forward: new usage appears, and the next sync reads up to it."""
    state = service.require_running(load_settings().ledger_home)
    click.echo(f"simulated today is now {service.advance_clock(state, advance_days)}")


@sandbox.command(hidden=True)
@click.option("--db-port", type=int, required=True)
@click.option("--sim-port", type=int, required=True)
@click.option("--seed", type=int, required=True)
@click.option("--days", type=int, required=True)
@click.option("--usage-per-day", type=float, required=True)
def serve(**options) -> None:
    """The background process behind `up` (not for direct use)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve_sandbox(load_settings().ledger_home, **options)
