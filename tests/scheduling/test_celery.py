"""A real Redis broker, real `ledger worker` and `ledger beat` processes, real HTTP and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import redis
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ledger.members.service import MemberInput, add_member
from ledger.scheduling.service import claim, slot_for
from ledger.settings import Settings
from ledger.simulator import Simulator
from ledger.sync.models import SyncRun
from ledger.worker.app import make_app
from tests.conftest import CLAIM_KEY, RUN_SUFFIX, TEST_BROKER_URL, TEST_DATABASE_URL, small_config
from tests.sync.helpers import assert_ledger_equals_truth
from tests.waiting import wait_for

BROKER = TEST_BROKER_URL
MEMBERS = ["1234567890", "2208112345"]


@pytest.fixture
def broker():
    client = redis.Redis.from_url(BROKER)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"no Redis at {BROKER}: start redis-server (bash .ci/run does)")
    client.flushdb()  # this run's database only (tests/conftest.py claims it)
    client.set(CLAIM_KEY, RUN_SUFFIX)
    yield client
    client.flushdb()
    client.set(CLAIM_KEY, RUN_SUFFIX)


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=30)) as simulator:
        yield simulator


@pytest.fixture
def ledger_db(clean_engine):
    with Session(clean_engine) as session:
        for corp in MEMBERS:
            add_member(session, MemberInput(corp))
        session.commit()
    return clean_engine


def process_env(sim, tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    env.update(
        LEDGER_DATABASE_URL=TEST_DATABASE_URL, POPBILL_API_URL=sim.url, LINKHUB_AUTH_URL=sim.url, LEDGER_BROKER_URL=BROKER,
        LEDGER_BROKER_VISIBILITY_TIMEOUT="3", LEDGER_HOME=str(tmp_path), LEDGER_SCHEDULE_SYNC="off",
        LEDGER_SCHEDULE_PENDING="off", LEDGER_SCHEDULE_BALANCES="off", POPBILL_RETRY_BACKOFF="0.01",
    )  # fmt: skip
    env.update(extra)
    return env


class Processes:
    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, args, env, tmp_path, name) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        if args[0] == "worker" and "LEDGER_WORKER_NAME" not in env and any(
            proc.poll() is None and proc.args[3] == "worker" for proc in self.running
        ):  # fmt: skip
            # Workers are ledger@<host> by default; a second one on this host at once needs its own name.
            env = {**env, "LEDGER_WORKER_NAME": f"ledger-{name}@%h"}
        proc = subprocess.Popen([sys.executable, "-m", "ledger", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.running.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def processes():
    procs = Processes()
    yield procs
    procs.stop_all()


def runs(engine, status="succeeded") -> set[tuple[int, str]]:
    with engine.connect() as conn:
        return set(conn.execute(select(SyncRun.member_id, SyncRun.kind).where(SyncRun.status == status)).all())


def app_for(env):
    """A Celery app as the processes see it, to send tasks from the test."""
    return make_app(Settings.from_env(env))


def test_beat_fans_out_and_every_member_is_synced(ledger_db, sim, broker, processes, tmp_path):
    env = process_env(sim, tmp_path, LEDGER_SCHEDULE_SYNC="2s")
    processes.start(["worker", "-c", "2"], env, tmp_path, "worker")
    processes.start(["beat"], env, tmp_path, "beat")
    wait_for(lambda: len(runs(ledger_db)) == len(MEMBERS) * 3, timeout=90, what="a succeeded run per member and kind")
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)
    with ledger_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM schedule_claims WHERE job = 'sync'")).scalar() >= 1


def test_worker_killed_mid_task_the_task_is_delivered_again(ledger_db, sim, broker, processes, tmp_path):
    env = process_env(sim, tmp_path)
    sim.inject("stall", path="/UseHistory", count=1, seconds=120)  # the first worker hangs inside the task
    first = processes.start(["worker", "-c", "1"], env, tmp_path, "worker1")
    app_for(env).send_task("ledger.sync.member", args=[MEMBERS[0], "usage"])
    wait_for(lambda: len(sim.requests("/UseHistory")) >= 1, timeout=60, what="the worker to start the task")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    processes.start(["worker", "-c", "1"], env, tmp_path, "worker2")
    wait_for(lambda: runs(ledger_db), timeout=90, what="the redelivered task to succeed")
    assert_ledger_equals_truth(ledger_db, sim, [MEMBERS[0]], kinds=("usage",))
    with ledger_db.connect() as conn:
        statuses = conn.execute(select(SyncRun.status).order_by(SyncRun.id)).scalars().all()
    assert statuses == ["abandoned", "succeeded"]


def test_duplicate_delivery_is_harmless(ledger_db, sim, broker, processes, tmp_path):
    env = process_env(sim, tmp_path)
    app = app_for(env)
    for _ in range(3):
        app.send_task("ledger.sync.member", args=[MEMBERS[1], "usage"])
    processes.start(["worker", "-c", "3"], env, tmp_path, "worker")

    def all_done() -> bool:
        with ledger_db.connect() as conn:
            return (
                conn.execute(select(func.count()).select_from(SyncRun).where(SyncRun.status != "running")).scalar() == 3
            )

    wait_for(all_done, timeout=90, what="three deliveries to finish")
    with ledger_db.connect() as conn:
        statuses = conn.execute(select(SyncRun.status)).scalars().all()
    assert set(statuses) <= {"succeeded", "skipped"} and "succeeded" in statuses
    assert_ledger_equals_truth(ledger_db, sim, [MEMBERS[1]], kinds=("usage",))


def test_a_second_beat_claims_nothing(ledger_db):
    import datetime as dt

    now = dt.datetime(2026, 11, 25, 2, 0, 7, tzinfo=dt.UTC)
    assert claim(ledger_db, "sync", "0 2 * * *", now=now) is True
    assert claim(ledger_db, "sync", "0 2 * * *", now=now + dt.timedelta(seconds=20)) is False  # the other beat
    assert claim(ledger_db, "sync", "0 2 * * *", now=now + dt.timedelta(days=1)) is True
    assert slot_for("600s", now) == slot_for("600s", now + dt.timedelta(seconds=100))
    assert slot_for("600s", now) != slot_for("600s", now + dt.timedelta(seconds=600))


def test_nightly_fan_out_enqueues_one_task_per_member_group_once(ledger_db, sim, broker, tmp_path):
    from ledger import context
    from ledger.settings import Settings
    from ledger.sync.tasks import nightly_sync

    env = process_env(sim, tmp_path, LEDGER_SCHEDULE_SYNC="0 2 * * *", LEDGER_SYNC_MEMBERS_PER_TASK="1")
    context.use(Settings.from_env(env))
    try:
        app_for(process_env(sim, tmp_path)).set_current()
        assert nightly_sync.apply().get() == len(MEMBERS)  # groups of one member
        assert nightly_sync.apply().get() == 0  # a second beat, the same minute
    finally:
        context.reset()
    queued = sum(broker.llen(key) for key in broker.keys("*") if broker.type(key) == b"list")
    assert queued == len(MEMBERS)
