"""Ctrl-C and SIGTERM stop `ledger sync` promptly with any --jobs: whole pages kept, runs
marked interrupted, exit 130, and the next sync completes the ledger exactly."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from ledger.history.models import Usage
from ledger.members.service import MemberInput
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.models import SyncRun, SyncState
from ledger.sync.service import sync_all
from ledger.sync.windows import SyncOptions
from tests.cli.helpers import add_members, subprocess_env
from tests.conftest import client_settings, small_config
from tests.sync.helpers import assert_ledger_equals_truth
from tests.waiting import wait_for

CORPS = ["1234567890", "2208112345"]
PER_PAGE = 50


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=60, usage_per_day=30)) as simulator:
        yield simulator


@pytest.fixture
def ledger_db(clean_engine):
    add_members(clean_engine, *map(MemberInput, CORPS))
    return clean_engine


def start_sync(sim, jobs: int) -> subprocess.Popen:
    env = subprocess_env(sim, LEDGER_SYNC_PER_PAGE=str(PER_PAGE), LEDGER_SYNC_WINDOW_DAYS="400")
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "sync", "--jobs", str(jobs)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def count(engine, query) -> int:
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def statuses(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(SyncRun.status).order_by(SyncRun.id)))


def finish_and_check(engine, sim) -> None:
    """The next sync completes the ledger exactly (no row lost, none twice)."""
    with PopbillClient(client_settings(sim)) as client:
        results = sync_all(engine, client, today=sim.world.today(), options=SyncOptions(per_page=PER_PAGE))
    assert {r.status for r in results} == {"succeeded"}
    assert_ledger_equals_truth(engine, sim, CORPS)


def assert_stopped_and_recorded(proc, engine) -> str:
    try:
        out, err = proc.communicate(timeout=15)  # a bound, not a measurement: no process may hang
    finally:
        if proc.poll() is None:  # never leave it holding locks the next test's TRUNCATE would wait on
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    summary = [line for line in err.splitlines() if line.startswith("interrupted: kept")]
    assert len(summary) == 1, err
    runs = statuses(engine)
    assert "running" not in runs and "interrupted" in runs
    # Whole pages only: every usage row stored belongs to a page the sync state counted.
    stored = count(engine, select(func.count()).select_from(Usage))
    pages = count(engine, select(func.coalesce(func.sum(SyncState.pages_done), 0)).where(SyncState.kind == "usage"))
    assert stored <= pages * PER_PAGE and stored > (pages - len(CORPS)) * PER_PAGE - PER_PAGE
    return summary[0]


@pytest.mark.parametrize("jobs", [1, 3])
def test_ctrl_c_between_pages(ledger_db, sim, jobs):
    sim.inject("latency", path="/UseHistory", rate=1.0, seconds=0.05)  # a sync long enough to interrupt
    proc = start_sync(sim, jobs)
    wait_for(lambda: count(ledger_db, select(func.count()).select_from(Usage)) >= 2 * PER_PAGE, what="two pages")
    proc.send_signal(signal.SIGINT)
    summary = assert_stopped_and_recorded(proc, ledger_db)
    assert "whole pages" in summary and "not started" in summary
    sim.clear_faults()
    finish_and_check(ledger_db, sim)


def test_sigterm_while_a_request_hangs(ledger_db, sim):
    """The request in flight would take a minute: the run is closed as interrupted, its page
    rolled back by the exit, and the process gone within the grace period."""
    sim.inject("stall", path="/UseHistory", skip=3, count=10, seconds=60)
    proc = start_sync(sim, 4)
    wait_for(lambda: len(sim.requests("/UseHistory")) >= 4, what="a request to hang")
    proc.send_signal(signal.SIGTERM)
    assert_stopped_and_recorded(proc, ledger_db)
    sim.clear_faults()
    finish_and_check(ledger_db, sim)
