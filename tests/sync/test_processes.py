"""`ledger sync` in several processes: the ledger equals the simulator's truth with no row twice,
including after one worker process is killed with SIGKILL mid-sync and the sync is run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text

from ledger.members.models import Member
from ledger.members.service import MemberInput
from ledger.simulator import Simulator
from ledger.sync.models import SyncRun
from ledger.sync.processes import processes_for, worth
from tests.cli.helpers import add_members, subprocess_env
from tests.conftest import small_config
from tests.sync.helpers import assert_ledger_equals_truth
from tests.waiting import wait_for

CORPS = ["1234567890", "2208112345", "1018112345", "2148112345", "1108112345"]


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=40, usage_per_day=30)) as simulator:
        yield simulator


@pytest.fixture
def ledger_db(committed):
    add_members(committed, *map(MemberInput, CORPS))
    return committed


def start_sync(sim) -> subprocess.Popen:
    env = subprocess_env(sim, LEDGER_SYNC_PER_PAGE="50", LEDGER_SYNC_WINDOW_DAYS="400")
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "sync", "--processes", "2", "--jobs", "2", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def scalar(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def finish(proc: subprocess.Popen) -> tuple[list[dict], str]:
    try:
        out, err = proc.communicate(timeout=120)  # a bound, not a measurement: no process may hang
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err[-3000:]
    return json.loads(out), err


def test_members_in_processes_equal_the_truth_after_a_worker_is_killed(ledger_db, sim):
    sim.inject("latency", path="/UseHistory", rate=1.0, seconds=0.02)  # a sync long enough to kill a worker in
    proc = start_sync(sim)
    wait_for(lambda: len(children(proc.pid)) == 2, what="two worker processes")
    workers = children(proc.pid)
    # Both workers hold leases at once (the leases name their sessions), and have written rows.
    wait_for(lambda: scalar(ledger_db, "SELECT count(DISTINCT holder_pid) FROM sync_locks") == 2, what="two leases")
    wait_for(lambda: scalar(ledger_db, "SELECT count(DISTINCT member_id) FROM usages") >= 2, what="rows of two members")
    os.kill(workers[0], signal.SIGKILL)
    results, err = finish(proc)

    assert proc.returncode == 1, err[-2000:]
    failed = [r for r in results if r["status"] == "failed"]
    assert failed and all("died (killed by SIGKILL)" in r["error"] for r in failed)
    assert {r["corp_num"] for r in results} == set(CORPS)
    assert sum(r["status"] == "succeeded" for r in results) >= len(CORPS)  # the other worker took the rest
    assert "failed" in err

    sim.clear_faults()
    rerun = start_sync(sim)
    results, err = finish(rerun)
    assert rerun.returncode == 0, err[-2000:]
    assert {r["status"] for r in results} == {"succeeded"}
    assert_ledger_equals_truth(ledger_db, sim, CORPS)  # every row, none twice
    with ledger_db.connect() as conn:
        runs = conn.execute(
            select(Member.corp_num, SyncRun.kind, SyncRun.status).join(Member).order_by(SyncRun.id)
        ).all()  # fmt: skip
    assert "running" not in {run.status for run in runs}
    for cut in failed:  # the run the dead worker left is closed (failed, or abandoned by the rerun)
        statuses = [run.status for run in runs if (run.corp_num, run.kind) == (cut["corp_num"], cut["kind"])]
        assert statuses[0] in ("failed", "abandoned") and statuses[-1] == "succeeded", statuses


def test_how_many_processes(engine):
    assert worth(8, members=3, jobs=2) == 2  # no more than jobs
    assert worth(2, members=3, jobs=8) == 2
    assert worth(4, members=1, jobs=4) == 1  # no more than members
    assert worth(4, members=0, jobs=4) == 1
    assert processes_for(engine, ["1", "2"], 4, jobs=1) == 1
    assert processes_for(engine, ["1", "2"], 1, jobs=4) == 1
    waiting = threading.Event()
    thread = threading.Thread(target=waiting.wait)
    thread.start()
    try:
        assert processes_for(engine, ["1", "2"], 2, jobs=2) == 1  # a process with threads does not fork
    finally:
        waiting.set()
        thread.join()


def test_ctrl_c_at_a_terminal_stops_every_worker_at_a_page(ledger_db, sim):
    """A terminal's Ctrl-C goes to the whole process group: the workers stop after the page in
    hand (not abandoned mid-request), exit 130, and the next sync completes the ledger."""
    sim.inject("latency", path="/UseHistory", rate=1.0, seconds=0.02)
    env = subprocess_env(sim, LEDGER_SYNC_PER_PAGE="50", LEDGER_SYNC_WINDOW_DAYS="400")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger", "sync", "--processes", "2", "--jobs", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: scalar(ledger_db, "SELECT count(DISTINCT member_id) FROM usages") >= 2, what="rows of two members")
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)  # a bound, not a measurement
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and len([x for x in err.splitlines() if x.startswith("interrupted: kept")]) == 1
    with ledger_db.connect() as conn:
        runs = conn.execute(select(SyncRun.status, SyncRun.error)).all()
    assert "running" not in {r.status for r in runs} and "interrupted" in {r.status for r in runs}
    # Stopped at page boundaries, none abandoned in a request (a second signal would have).
    assert all("after the last committed page" in r.error for r in runs if r.status == "interrupted")
    sim.clear_faults()
    rerun = start_sync(sim)
    results, err = finish(rerun)
    assert rerun.returncode == 0 and {r["status"] for r in results} == {"succeeded"}, err[-2000:]
    assert_ledger_equals_truth(ledger_db, sim, CORPS)
