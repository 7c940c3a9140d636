"""The database goes away in the middle of syncs: nothing is dropped, nothing is left
`running`, the ledger ends equal to the simulator's truth, and no one had to step in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ledger.db import migrate
from ledger.db.engine import make_engine
from ledger.members.models import Member
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.scheduling.service import claim
from ledger.secret import Secret
from ledger.settings import Settings
from ledger.simulator import Simulator
from ledger.sync.catch_up import close_abandoned_runs, overdue
from ledger.sync.models import SyncRun
from ledger.sync.resilient import sync_member_resilient
from ledger.sync.status import sync_status
from tests.conftest import client_settings, small_config
from tests.private_servers import PrivatePostgres
from tests.sync.helpers import assert_ledger_equals_truth
from tests.waiting import wait_for

MEMBERS = ["1234567890", "2208112345", "3108154321"]


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=30)) as simulator:
        yield simulator


def add_members(engine, corps=MEMBERS) -> None:
    with Session(engine) as session:
        for corp in corps:
            add_member(session, MemberInput(corp))
        session.commit()


def run_statuses(engine, corp: str, kind: str) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return conn.execute(
            select(SyncRun.status, SyncRun.error)
            .join(Member, Member.id == SyncRun.member_id)
            .where(Member.corp_num == corp, SyncRun.kind == kind)
            .order_by(SyncRun.id)
        ).all()


def test_database_stopped_mid_run_the_cli_waits_retries_and_finishes_every_member(sim, tmp_path):
    """Before: 41 of 60 syncs failed within a second, none retried, the CLI stopped at the first
    database error. After: the interrupted sync is recorded failed, tried again once the
    server is back, and every member ends equal to the truth; exit 0, no manual step."""
    pg = PrivatePostgres()
    engine = make_engine(dataclasses.replace(Settings(), database_url=Secret(pg.url)))
    try:
        migrate.upgrade(engine)
        add_members(engine)
        # A usage page of the first member stalls: the server is stopped under it.
        sim.inject("stall", path="/UseHistory", skip=1, count=1, seconds=1.0)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
        env |= {"LEDGER_DATABASE_URL": pg.url, "POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url,
                "LEDGER_DB_RETRY_SECONDS": "60"}  # fmt: skip
        stderr = tmp_path / "stderr"
        with open(stderr, "w") as err:
            cli = subprocess.Popen([sys.executable, "-m", "ledger", "sync", "--jobs", "1", "--kind", "usage",
                                    "--json"], env=env, stdout=subprocess.PIPE, stderr=err, text=True)  # fmt: skip
            wait_for(lambda: len(sim.requests("/UseHistory")) >= 2, what="the first member's sync to be mid-run")
            pg.stop()
            wait_for(lambda: "lost the database" in stderr.read_text(), what="the CLI to notice and retry")
            pg.start()
            out, _ = cli.communicate(timeout=120)
        assert cli.returncode == 0, stderr.read_text()
        assert_ledger_equals_truth(engine, sim, MEMBERS, kinds=("usage",))
        # What happened is on record: the cut-short run failed (or was found abandoned), then succeeded.
        history = run_statuses(engine, MEMBERS[0], "usage")
        assert history[-1][0] == "succeeded" and history[0][0] in {"failed", "abandoned"}
        assert all(s != "running" for s, _ in history)
        print(f"\nrun history of the interrupted sync: {history}")
        assert [r["last_status"] for r in sync_status(engine) if r["kind"] == "usage"] == ["succeeded"] * 3
    finally:
        engine.dispose()
        pg.close()


def writes_waiting(engine) -> int:
    with engine.connect() as conn:
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        return conn.execute(text(waiting)).scalar()


def test_connection_terminated_mid_task_is_retried_inside_the_celery_task(clean_engine, sim):
    """Before: pg_terminate_backend on a sync's connection -> that sync `failed`, not retried.
    The Celery task itself runs here (eagerly, in this process), on the test database."""
    from ledger import context
    from ledger.sync.tasks import sync_member_task
    from tests.conftest import TEST_DATABASE_URL

    add_members(clean_engine, MEMBERS[:1])
    context.use(dataclasses.replace(client_settings(sim), database_url=Secret(TEST_DATABASE_URL), db_retry_seconds=30))
    try:
        results: list = []
        task = threading.Thread(target=lambda: results.append(sync_member_task.apply(args=[MEMBERS[0], "usage"])))
        # A sync holds a database connection only while it writes a page: hold it there, inside
        # its page transaction, and terminate that connection.
        with clean_engine.connect() as blocker:
            blocker.execute(text("LOCK TABLE usages IN SHARE MODE"))
            task.start()
            wait_for(lambda: writes_waiting(clean_engine) > 0, what="the task's sync to be inside a page write")
            with clean_engine.connect() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )  # fmt: skip
                ).scalar()
            blocker.rollback()
        task.join(timeout=60)
    finally:
        context.reset()
    assert killed >= 1
    assert results[0].get()["status"] == "succeeded"  # no Celery retry needed: retried in the task
    statuses = [s for s, _ in run_statuses(clean_engine, MEMBERS[0], "usage")]
    assert statuses[-1] == "succeeded" and statuses[0] in {"failed", "abandoned"} and "running" not in statuses
    assert_ledger_equals_truth(clean_engine, sim, MEMBERS[:1], kinds=("usage",))


def test_database_away_longer_than_the_bound_returns_a_failure_and_goes_on(sim):
    """The bound holds: a database that never comes back gives a failed result (not an
    exception), in about db_retry_seconds."""
    pg = PrivatePostgres()
    engine = make_engine(dataclasses.replace(Settings(), database_url=Secret(pg.url)))
    try:
        migrate.upgrade(engine)
        add_members(engine, MEMBERS[:1])
        pg.stop()
        settings = dataclasses.replace(client_settings(sim), db_retry_seconds=1.0)
        with PopbillClient(settings) as client:
            result = sync_member_resilient(engine, client, MEMBERS[0], "usage", settings=settings)
        assert result.status == "failed" and result.database_lost and "database unavailable" in result.error
    finally:
        engine.dispose()
        pg.close()


def test_catch_up_finds_what_the_last_scheduled_sync_did_not_finish(clean_engine, sim):
    add_members(clean_engine)
    settings = dataclasses.replace(client_settings(sim), schedule_sync="0 2 * * *", catch_up_grace=600)
    now = dt.datetime.now(dt.UTC)
    slot = now - dt.timedelta(hours=1)
    assert claim(clean_engine, "sync", "0 2 * * *", now=slot)
    with PopbillClient(settings) as client:
        sync_member_resilient(clean_engine, client, MEMBERS[0], "usage", settings=settings)
    everything = {(c, k) for c in MEMBERS for k in ("payments", "usage", "refunds")}
    # One sync succeeded since the slot; it started within the grace period, so nothing of
    # it is due; every other member x kind is (never synced since the nightly slot).
    assert set(overdue(clean_engine, settings, now=now)) == everything - {(MEMBERS[0], "usage")}
    later = now + dt.timedelta(hours=1)
    assert set(overdue(clean_engine, settings, now=later)) == everything - {(MEMBERS[0], "usage")}
    # Within the grace period after the slot, nothing is due yet (the nightly run is on it).
    assert overdue(clean_engine, settings, now=slot + dt.timedelta(seconds=60)) == []
    assert overdue(clean_engine, dataclasses.replace(settings, schedule_sync="off"), now=now) == []
    # A success older than the staleness limit is due whatever the slots say.
    with clean_engine.begin() as conn:
        conn.execute(text("UPDATE sync_states SET last_success_at = now() - interval '27 hours'"))
        conn.execute(text("DELETE FROM schedule_claims"))
    assert overdue(clean_engine, settings, now=later) == [(MEMBERS[0], "usage")]


def test_runs_left_running_by_a_dead_process_are_closed_but_a_live_one_is_not(clean_engine, sim):
    add_members(clean_engine, MEMBERS[:2])
    with clean_engine.begin() as conn:
        ids = conn.execute(text("SELECT id FROM members ORDER BY corp_num")).scalars().all()
        for member_id in ids:
            conn.execute(text("INSERT INTO sync_runs (member_id, kind) VALUES (:m, 'usage')"), {"m": member_id})
    from ledger.sync.locks import sync_lock

    with sync_lock(clean_engine, ids[1], "usage") as holder:  # the second one is alive
        assert holder is None
        assert close_abandoned_runs(clean_engine) == 1
    assert [s for s, _ in run_statuses(clean_engine, MEMBERS[0], "usage")] == ["abandoned"]
    assert [s for s, _ in run_statuses(clean_engine, MEMBERS[1], "usage")] == ["running"]
