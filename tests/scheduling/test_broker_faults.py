"""Workers killed with SIGKILL and brokers crashed and restarted, on PRIVATE brokers: Redis with
AOF (fsync always) and a short visibility timeout, and a RabbitMQ node of our own. Each test
prints what it measured (`pytest -s`); README "Reliability" has the figures.

Before: a killed worker's tasks came back only after the 2 h visibility timeout; a Redis
restart without persistence lost every queued task. After: RabbitMQ (the default) returns a
killed worker's task at once and keeps queued tasks across a crash; Redis with AOF keeps them
too, returning a killed worker's task after its visibility timeout; and whatever a broker
loses anyway, the catch-up enqueues again."""

from __future__ import annotations

import dataclasses
import datetime as dt
import signal
import time

import kombu.pools
import pytest
import redis
from sqlalchemy import select

from ledger.scheduling.service import claim
from ledger.sync.models import KINDS, SyncRun
from tests.private_servers import PrivateRabbit, PrivateRedis
from tests.scheduling.test_celery import MEMBERS, app_for, ledger_db, process_env, processes, runs, sim  # noqa: F401, I001 - fixtures
from tests.sync.helpers import assert_ledger_equals_truth
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def rabbit():
    node = PrivateRabbit()
    yield node
    node.close()


@dataclasses.dataclass
class Broker:
    name: str
    server: object

    @property
    def url(self) -> str:
        return self.server.url

    def crash_and_restart(self) -> None:
        self.server.kill()
        self.server.start()


@pytest.fixture(params=["rabbitmq", "redis-aof"])
def broker(request):
    if request.param == "rabbitmq":
        yield Broker("rabbitmq", request.getfixturevalue("rabbit"))
        return
    server = PrivateRedis(appendonly=True)
    yield Broker("redis-aof", server)
    server.close()


def test_worker_killed_mid_task_the_task_comes_back(ledger_db, sim, broker, processes, tmp_path):  # noqa: F811
    env = process_env(sim, tmp_path, LEDGER_BROKER_URL=broker.url, LEDGER_BROKER_VISIBILITY_TIMEOUT="3")
    app = app_for(env)
    app.control.purge()
    sim.inject("stall", path="/UseHistory", count=1, seconds=120)  # the worker that takes it hangs in it
    # Two idle workers first: what is measured is redelivery, not a worker's start.
    pair = {name: processes.start(["worker", "-c", "1"], env, tmp_path, name) for name in ("one", "two")}
    for name in pair:
        wait_for(lambda n=name: "ready." in (tmp_path / f"{n}.log").read_text(), timeout=60, what=f"worker {name}")
    app.send_task("ledger.sync.member", args=[MEMBERS[0], "usage"])
    wait_for(lambda: len(sim.requests("/UseHistory")) >= 1, timeout=60, what="a worker to start the task")
    delivered_at = time.monotonic()
    doomed = next(proc for name, proc in pair.items() if "received" in (tmp_path / f"{name}.log").read_text())
    killed_at = time.monotonic()
    doomed.send_signal(signal.SIGKILL)
    wait_for(lambda: len(sim.requests("/UseHistory")) >= 2, timeout=60, what="the task to be delivered again")
    again = time.monotonic()
    print(f"\n{broker.name}: task delivered again {again - killed_at:.2f} s after kill -9, "
          f"{again - delivered_at:.2f} s after its first delivery")  # fmt: skip
    wait_for(lambda: runs(ledger_db), timeout=60, what="the redelivered task to succeed")
    assert_ledger_equals_truth(ledger_db, sim, [MEMBERS[0]], kinds=("usage",))
    wait_for(lambda: _statuses(ledger_db) == ["abandoned", "succeeded"], timeout=30, what="the run history")


def drop_connections(app) -> None:
    """Close the app's broker connections, as a process that exits would, and forget its pool:
    kombu keeps one pool per broker URL for the whole process, and a later app on the same
    broker (another test's) must not be handed the closed one."""
    app.pool.force_close_all()
    kombu.pools.reset()


def _statuses(engine) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(select(SyncRun.status).order_by(SyncRun.id)).scalars().all()


def test_broker_crash_keeps_the_queued_tasks(ledger_db, sim, broker, processes, tmp_path):  # noqa: F811
    env = process_env(sim, tmp_path, LEDGER_BROKER_URL=broker.url)
    app = app_for(env)
    app.control.purge()
    for corp in MEMBERS:
        for kind in KINDS:
            app.send_task("ledger.sync.member", args=[corp, kind])  # confirmed (RabbitMQ) or fsynced (AOF)
    drop_connections(app)
    broker.crash_and_restart()  # no worker ever saw them
    processes.start(["worker", "-c", "2"], env, tmp_path, "worker")
    wait_for(lambda: len(runs(ledger_db)) == len(MEMBERS) * len(KINDS), timeout=90, what="every queued sync to run")
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)


def test_tasks_a_broker_lost_are_enqueued_again_by_the_catch_up(ledger_db, sim, processes, tmp_path):  # noqa: F811
    """The measured loss (Redis restarted without persistence: queued tasks vanished) no longer
    costs a night: the catch-up finds the syncs the last scheduled run did not finish."""
    server = PrivateRedis(appendonly=False)
    try:
        env = process_env(sim, tmp_path, LEDGER_BROKER_URL=server.url, LEDGER_SCHEDULE_SYNC="0 2 * * *",
                          LEDGER_SCHEDULE_CATCH_UP="2s", LEDGER_CATCH_UP_GRACE="0")  # fmt: skip
        app = app_for(env)
        # The nightly run fanned out its tasks...
        assert claim(ledger_db, "sync", "0 2 * * *", now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30))
        for corp in MEMBERS:
            for kind in KINDS:
                app.send_task("ledger.sync.member", args=[corp, kind])
        drop_connections(app)
        server.kill()  # ...and the broker lost them all
        server.start()
        assert redis.Redis.from_url(server.url).llen("celery") == 0  # the loss README "Reliability" measures
        restarted_at = time.monotonic()
        processes.start(["worker", "-c", "2"], env, tmp_path, "worker")
        processes.start(["beat"], env, tmp_path, "beat")
        wait_for(lambda: len(runs(ledger_db)) == len(MEMBERS) * len(KINDS), timeout=90, what="the catch-up to redo all")
        print(
            f"\nredis without persistence: all lost syncs redone {time.monotonic() - restarted_at:.1f} s after restart"
        )
        assert_ledger_equals_truth(ledger_db, sim, MEMBERS)
    finally:
        server.close()
