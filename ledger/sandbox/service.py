"""Starting, filling and stopping the sandbox: a supervisor process in the background that keeps
an embedded PostgreSQL and the simulator up (sandbox/supervisor.py), found again through its
state file (sandbox/state.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests
from sqlalchemy.orm import Session

from ledger.db import migrate
from ledger.db.engine import make_engine
from ledger.members.service import MemberInput, add_member, list_members
from ledger.paths import typed_path
from ledger.popbill import PopbillClient
from ledger.sandbox import postgres
from ledger.sandbox.samples import SAMPLE_MEMBERS
from ledger.sandbox.state import SandboxState, clear_state, previous_state, read_state, running_state, sandbox_home
from ledger.settings import Settings
from ledger.sync.display import counted
from ledger.sync.runner import run_sync

START_TIMEOUT = 120.0  # seconds; a first start runs initdb

Say = Callable[[str], None]


class SandboxError(Exception):
    """The sandbox could not be started, or is not running; the message says what to do."""


def require_running(ledger_home: Path) -> SandboxState:
    state = running_state(ledger_home)
    if state is None:
        raise SandboxError("the sandbox is not running: start it with `ledger sandbox up`")
    return state


def sandbox_settings(state: SandboxState) -> Settings:
    return Settings.from_env(state.environment())


def start(home: Path, db_port: int, sim_port: int, seed: int, days: int, usage_per_day: float, say: Say) -> SandboxState:
    """Start the supervisor in its own session and wait until it has written its state."""
    killed = read_state(home)  # a supervisor that was killed: stop the server it left behind
    if killed is not None:
        postgres.stop(Path(killed.pgdata))
        clear_state(home)
    previous = previous_state(home)
    if previous is not None:  # the same ports as last time, when they are free
        db_port, sim_port = db_port or previous.db_port, sim_port or previous.sim_port
    folder = sandbox_home(home)
    folder.mkdir(parents=True, exist_ok=True)
    say(f"starting the sandbox under {typed_path(folder)} ...")
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
            raise SandboxError(f"the sandbox did not start: {tail[0]} (log: {typed_path(log_path)})")
        time.sleep(0.1)  # the supervisor writes its state file when ready; nothing to wait on but the file
    child.terminate()
    raise SandboxError(f"the sandbox did not start within {START_TIMEOUT:.0f} s (log: {typed_path(log_path)})")


def populate(state: SandboxState, *, sync: bool, say: Say, show_progress: bool) -> None:
    """Migrate, add the sample members, and sync them."""
    settings = sandbox_settings(state)
    engine = make_engine(settings)
    try:
        migrate.upgrade(engine)
        with Session(engine) as session, session.begin():
            known = {m.corp_num for m in list_members(session)}
            added = [add_member(session, MemberInput(c, name=n)) for c, n in SAMPLE_MEMBERS if c not in known]
        say(f"members    {len(SAMPLE_MEMBERS)} sample members ({len(added)} added)")
        if not sync:
            return
        with PopbillClient(settings) as client:
            started = time.perf_counter()
            results = run_sync(
                engine, client, corp_nums=[c for c, _ in SAMPLE_MEMBERS], kinds=("payments", "usage", "refunds"),
                show_progress=show_progress,
            ).results  # fmt: skip
        failed = [r for r in results if r.status == "failed"]
        rows = sum(r.rows for r in results)
        say(f"synced     {rows} rows in {time.perf_counter() - started:.1f} s, {len(failed)} failed")
        if failed:
            raise SandboxError(f"{counted(len(failed), 'sync')} failed; see `ledger status`")
    finally:
        engine.dispose()


def stop(home: Path) -> str:
    """Stop the supervisor (and the PostgreSQL it may have left behind); what happened, in a line."""
    state = read_state(home)
    if state is None:
        return "the sandbox is not running"
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
    return "the sandbox is down" + (" (its PostgreSQL was left running; stopped it)" if orphan else "")


def simulated_today(state: SandboxState) -> str | None:
    """The simulator's today (YYYY-MM-DD), or None when it does not answer."""
    try:
        return requests.get(f"{state.simulator_url}/_sim/clock", timeout=5).json()["now"][:10]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def advance_clock(state: SandboxState, days: int) -> str:
    """Move the simulator's clock forward; its new today."""
    answer = requests.post(f"{state.simulator_url}/_sim/clock", json={"advance_days": days}, timeout=10)
    return answer.json()["now"][:10]
