"""A sync killed with SIGKILL at several points, then rerun: the ledger equals the truth.
Two syncs of one member at once: one runs, the other says it is already running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ledger.history.models import Usage
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.locks import APPLICATION_NAME
from ledger.sync.models import SyncRun
from ledger.sync.service import sync_member
from ledger.sync.windows import SyncOptions
from tests.conftest import TEST_DATABASE_URL, client_settings, small_config
from tests.sync.helpers import assert_ledger_equals_truth
from tests.waiting import wait_for

CORP = "1234567890"


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=60, usage_per_day=30)) as simulator:
        yield simulator


@pytest.fixture
def ledger_db(clean_engine):
    with Session(clean_engine) as session:
        add_member(session, MemberInput(CORP))
        session.commit()
    return clean_engine


def start_sync_process(sim) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    env.update(
        LEDGER_DATABASE_URL=TEST_DATABASE_URL, POPBILL_API_URL=sim.url, LINKHUB_AUTH_URL=sim.url,
        LEDGER_SYNC_PER_PAGE="200", LEDGER_SYNC_WINDOW_DAYS="400",
    )  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "sync", "--member", CORP, "--kind", "usage", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def waiting_on_a_lock(engine) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar()
            > 0
        )


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def rerun_and_check(engine, sim, *, already_stored: int = 0) -> None:
    with PopbillClient(client_settings(sim)) as client:
        result = sync_member(engine, client, CORP, "usage", today=sim.world.today())
    assert result.status == "succeeded", result.error
    # Rows the killed run committed are found again (through the merge), not written twice.
    assert result.unchanged == already_stored
    assert_ledger_equals_truth(engine, sim, [CORP], kinds=("usage",))
    with engine.connect() as conn:
        statuses = conn.execute(select(SyncRun.status).order_by(SyncRun.id)).scalars().all()
    assert statuses == ["abandoned", "succeeded"]


def test_killed_while_writing_a_page(ledger_db, sim):
    """Inside a page: the rows are being merged into usages when the process dies."""
    with ledger_db.connect() as blocker:
        blocker.execute(text("LOCK TABLE usages IN SHARE MODE"))
        proc = start_sync_process(sim)
        wait_for(lambda: waiting_on_a_lock(ledger_db), what="the sync to block inside its page write")
        kill(proc)
        blocker.rollback()
    with ledger_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Usage)).scalar() == 0
    rerun_and_check(ledger_db, sim)


def test_killed_after_rows_before_commit(ledger_db, sim):
    """The page's rows are written, the sync state not yet advanced, nothing committed."""
    with ledger_db.connect() as blocker:
        blocker.execute(text("INSERT INTO sync_states (member_id, kind) SELECT id, 'usage' FROM members"))
        blocker.commit()
        blocker.execute(text("SELECT 1 FROM sync_states FOR UPDATE"))
        proc = start_sync_process(sim)
        wait_for(lambda: waiting_on_a_lock(ledger_db), what="the sync to block advancing its state")
        kill(proc)
        blocker.rollback()
    with ledger_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Usage)).scalar() == 0
    rerun_and_check(ledger_db, sim)


def test_killed_between_pages_right_after_a_commit(ledger_db, sim):
    """Two pages committed; the third request (fetched ahead) hangs when the process dies."""
    sim.inject("stall", path="/UseHistory", skip=2, count=1, seconds=60)
    proc = start_sync_process(sim)

    def stored() -> int:
        with ledger_db.connect() as conn:
            return conn.execute(select(func.count()).select_from(Usage)).scalar()

    wait_for(lambda: len(sim.requests("/UseHistory")) >= 3 and stored() == 400, what="two pages committed")
    kill(proc)
    assert stored() == 400
    rerun_and_check(ledger_db, sim, already_stored=400)


def test_second_sync_of_the_same_member_says_already_running(ledger_db, sim):
    sim.inject("latency", path="/UseHistory", count=1, seconds=1.0)
    with PopbillClient(client_settings(sim)) as client:
        first: list = []
        worker = threading.Thread(
            target=lambda: first.append(sync_member(ledger_db, client, CORP, "usage", today=sim.world.today()))
        )
        worker.start()

        def lock_held() -> bool:
            # The lease names the sync's lock connection (application 'ledger sync').
            with ledger_db.connect() as conn:
                held = (
                    "SELECT count(*) FROM sync_locks s JOIN pg_stat_activity a ON a.pid = s.holder_pid "
                    "WHERE a.application_name = :name"
                )
                return conn.execute(text(held), {"name": APPLICATION_NAME}).scalar() > 0

        wait_for(lock_held, what="the first sync to take its lock")
        second = sync_member(ledger_db, client, CORP, "usage", today=sim.world.today())
        worker.join(timeout=60)
    assert second.status == "skipped" and second.error == "already running" and second.api_calls == 0
    assert first[0].status == "succeeded"
    assert_ledger_equals_truth(ledger_db, sim, [CORP], kinds=("usage",))


def test_racing_syncs_never_duplicate(ledger_db, sim):
    with PopbillClient(client_settings(sim)) as client:
        results: list = []
        barrier = threading.Barrier(4)

        def run():
            barrier.wait()
            results.append(
                sync_member(
                    ledger_db, client, CORP, "usage", today=sim.world.today(), options=SyncOptions(per_page=100)
                )
            )

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert {r.status for r in results} <= {"succeeded", "skipped"} and len(results) == 4
    assert any(r.status == "succeeded" for r in results)
    assert_ledger_equals_truth(ledger_db, sim, [CORP], kinds=("usage",))
