"""`ledger healthcheck` and the watchdog against real worker and beat processes, a real Redis
broker and PostgreSQL; and what they say when each of those is down."""

from __future__ import annotations

import dataclasses
import datetime as dt
import signal
import socket
import subprocess
import sys

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ledger.alerts.models import Alert, Notification
from ledger.health import checks, watchdog
from ledger.health.models import Heartbeat
from ledger.kst import KST
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from tests.conftest import client_settings, small_config
from tests.scheduling.test_celery import process_env
from tests.services import free_port
from tests.waiting import wait_for

MEMBERS = ["1234567890", "2208112345"]


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=5)) as simulator:
        yield simulator


def health(target: str, env: dict, **overrides):
    """The command as docker-compose runs it (`python -m ledger.health`): exit code and its last line."""
    result = subprocess.run([sys.executable, "-m", "ledger.health", target], env={**env, **overrides},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    return result.returncode, (result.stderr.strip().splitlines() or [""])[-1]


def problems(target: str, env: dict, **overrides) -> list[str]:
    """The same checks in this process (quicker to poll)."""
    from ledger.settings import Settings

    return checks.run(target, Settings.from_env({**env, **overrides}))


def test_healthcheck_passes_when_all_run_and_names_what_stopped(clean_engine, sim, broker, processes, tmp_path):
    env = process_env(sim, tmp_path, LEDGER_HEALTH_BEAT_MAX_AGE="4", LEDGER_HEALTH_SYNC_DEADLINE="off",
                      LEDGER_WATCHDOG_INTERVAL="1")  # fmt: skip
    worker = processes.start(["worker", "-c", "1"], env, tmp_path, "worker")
    beat = processes.start(["beat"], env, tmp_path, "beat")

    def beating() -> bool:
        with clean_engine.connect() as conn:
            return conn.execute(select(Heartbeat.name).where(Heartbeat.name == "beat")).first() is not None

    wait_for(beating, timeout=60, what="beat's first heartbeat")
    wait_for(lambda: problems("all", env) == [], timeout=60, what="the worker to answer pings")
    assert health("all", env) == (0, "")
    # It asks this host's own node by name: another node's silence is not this one's health.
    from ledger.settings import Settings

    own = checks.node_name(Settings.from_env(env))
    assert own == f"ledger@{socket.gethostname()}"
    elsewhere = checks.worker(Settings.from_env(env), node="ledger@another-host")
    assert elsewhere == "worker ledger@another-host did not answer within 2 s"

    assert problems("worker", env, LEDGER_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0") == [
        "broker unreachable: OperationalError"
    ]
    (dead_database,) = problems("beat", env, LEDGER_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/ledger")
    assert dead_database.startswith("database unreachable: ") and "\n" not in dead_database

    beat.send_signal(signal.SIGTERM)
    beat.wait(timeout=20)
    wait_for(lambda: problems("beat", env), timeout=30, what="the health check to see beat stopped")
    code, line = health("beat", env)
    assert code == 1 and line.startswith("beat heartbeat is ") and "minutes old (limit 0.1)" in line
    assert problems("worker", env) == []  # the worker's own check does not depend on beat

    def beat_down_fired() -> bool:
        with clean_engine.connect() as conn:
            return conn.execute(select(Alert.state).where(Alert.rule == "beat_down")).scalar() == "firing"

    # Raised by the worker's watchdog, through the same alert machinery, not by beat itself.
    wait_for(beat_down_fired, timeout=30, what="the worker's watchdog to fire beat_down")
    with clean_engine.connect() as conn:
        sent = conn.execute(select(Notification.text).where(Notification.rule == "beat_down")).scalars().all()
    assert sent and sent[0].startswith("[FIRING] beat_down beat: beat heartbeat is")

    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    assert problems("worker", env) == [f"worker {own} did not answer within 2 s"]


def test_nightly_sync_late_until_every_history_is_synced(clean_engine, sim):

    with Session(clean_engine) as session:
        for corp in MEMBERS:
            add_member(session, MemberInput(corp))
        session.commit()
    with clean_engine.begin() as conn:
        conn.execute(text("UPDATE members SET created_at = now() - interval '2 days'"))
    now = dt.datetime.now(dt.UTC)
    settings = dataclasses.replace(client_settings(sim), health_sync_deadline=dt.time(0, 0),
                                   schedule_sync="0 2 * * *")  # fmt: skip
    day = now.astimezone(KST).date()
    fetch = checks.engine_fetch(clean_engine)
    assert checks.nightly_sync(fetch, settings, now) == (
        f"nightly sync not finished by 00:00 KST on {day}: 6 member histories not synced since"
    )
    assert "nightly_sync_late" in watchdog.review(clean_engine, settings, now=now)
    with PopbillClient(settings) as client:
        for corp in MEMBERS:
            for kind in ("payments", "usage", "refunds"):
                sync_member(clean_engine, client, corp, kind, today=sim.world.today())
    later = dt.datetime.now(dt.UTC)
    assert checks.nightly_sync(fetch, settings, later) is None
    assert "nightly_sync_late" not in watchdog.review(clean_engine, settings, now=later)
    with clean_engine.connect() as conn:
        texts = conn.execute(select(Notification.text).where(Notification.channel == "log", Notification.rule == "nightly_sync_late")
                             .order_by(Notification.id)).scalars().all()  # fmt: skip
    assert [t.split("]")[0] for t in texts] == ["[FIRING", "[RESOLVED"]
    assert checks.nightly_sync(fetch, dataclasses.replace(settings, schedule_sync="off"), now) is None


def test_the_healthcheck_loads_no_sqlalchemy_celery_or_cli(engine):
    """What docker-compose runs every minute stays light: a regression here costs every container."""
    from tests.conftest import TEST_DATABASE_URL

    script = ("import sys; from ledger.health.probe import check; code, line = check('beat'); "
              "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'celery', 'click'}))")  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "LEDGER_DATABASE_URL": TEST_DATABASE_URL}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    code, loaded = result.stdout.split(maxsplit=1)
    assert code in ("0", "1") and loaded == "[]\n", result.stdout + result.stderr  # the check ran, and loaded none
