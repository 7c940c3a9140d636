"""Balance alerts driven by the simulator, delivered to a real webhook receiver and SMTP server."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ledger.alerts import service
from ledger.alerts.models import Alert, Notification
from ledger.alerts.outbox import deliver
from ledger.balances.models import BalanceSnapshot
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.secret import Secret
from ledger.settings import Settings
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from tests.conftest import client_settings, small_config
from tests.receivers import MailReceiver, WebhookReceiver

CORP = "1234567890"
T0 = dt.datetime(2026, 11, 25, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=30)) as simulator:
        yield simulator


@pytest.fixture
def receivers():
    hook, mail = WebhookReceiver(), MailReceiver()
    yield hook, mail
    hook.close()
    mail.close()


@pytest.fixture
def env(clean_engine, sim, receivers):
    hook, mail = receivers
    settings = dataclasses.replace(
        client_settings(sim), alert_threshold=Decimal("1000"), partner_threshold=Decimal("0"), alert_runway_days=0,
        alert_repeat_seconds=4 * 3600, alert_hysteresis=Decimal("0.10"), alert_webhook_url=Secret(hook.url),
        smtp_host="127.0.0.1", smtp_port=mail.port, mail_to=("ops@example.com",),
    )  # fmt: skip
    with Session(clean_engine) as session:
        add_member(session, MemberInput(CORP))
        session.commit()
    with PopbillClient(settings) as client:
        yield clean_engine, client, settings


def check(env, at: dt.datetime):
    engine, client, settings = env
    readings = service.check_balances(engine, client, settings, now=at)
    deliver(engine, settings, now=at)
    return {r.subject: r for r in readings}


def alert_state(engine, rule="low_balance", subject=CORP) -> str:
    with engine.connect() as conn:
        return conn.execute(select(Alert.state).where(Alert.subject == subject, Alert.rule == rule)).scalar()


def test_fire_repeat_hysteresis_resolve_and_mute(env, sim, receivers):
    engine, _, _ = env
    hook, mail = receivers
    sim.set_balance(CORP, "5000")
    check(env, T0)
    assert alert_state(engine) == "ok" and hook.received == []

    sim.set_balance(CORP, "500")
    check(env, T0 + dt.timedelta(minutes=30))
    assert alert_state(engine) == "firing"
    assert [t.split("]")[0] for t in hook.texts()] == ["[FIRING"]
    assert "500" in hook.received[0]["text"] and hook.received[0]["subject"] == CORP
    assert len(mail.messages) == 1 and "FIRING" in mail.messages[0]

    check(env, T0 + dt.timedelta(hours=1))  # still low, inside the repeat interval: deduplicated
    assert len(hook.received) == 1

    check(env, T0 + dt.timedelta(hours=5))  # past the 4 h repeat interval
    assert [t.split("]")[0] for t in hook.texts()] == ["[FIRING", "[REPEAT"]

    sim.set_balance(CORP, "1050")  # above the threshold, but not by the 10% hysteresis
    check(env, T0 + dt.timedelta(hours=6))
    assert alert_state(engine) == "firing" and len(hook.received) == 2

    sim.set_balance(CORP, "1200")
    check(env, T0 + dt.timedelta(hours=7))
    assert alert_state(engine) == "ok"
    assert hook.texts()[-1].startswith("[RESOLVED")
    # What a resolved alert says is true of it: the balance is no longer below the threshold.
    assert "is below" not in hook.texts()[-1] and "no longer below 1000" in hook.texts()[-1]

    service.silence(engine, subject=CORP, rule=None, duration=dt.timedelta(days=2), comment="deposit promised",
                    created_by="ops", now=T0 + dt.timedelta(hours=8))  # fmt: skip
    sim.set_balance(CORP, "100")
    check(env, T0 + dt.timedelta(hours=9))
    assert alert_state(engine) == "firing" and len(hook.received) == 3  # muted: the state moves, nothing is sent
    check(env, T0 + dt.timedelta(days=3))  # the mute expired
    assert hook.texts()[-1].startswith("[REPEAT") and len(hook.received) == 4
    assert len(mail.messages) == 4


def test_fires_only_after_k_consecutive_checks(env, sim, receivers):
    engine, client, settings = env
    env2 = (engine, client, dataclasses.replace(settings, alert_consecutive=2))
    sim.set_balance(CORP, "10")
    check(env2, T0)
    assert alert_state(engine) == "pending" and receivers[0].received == []
    check(env2, T0 + dt.timedelta(minutes=30))
    assert alert_state(engine) == "firing" and len(receivers[0].received) == 1


def test_failed_check_is_unknown_never_ok(env, sim, receivers):
    engine, _, _ = env
    sim.set_balance(CORP, "10")
    check(env, T0)
    sim.world.close_member(CORP)
    readings = check(env, T0 + dt.timedelta(minutes=30))
    assert readings[CORP].error and readings[CORP].balance is None
    assert alert_state(engine) == "unknown"
    with engine.connect() as conn:
        resolved = conn.execute(select(Alert.resolved_at).where(Alert.subject == CORP)).scalar()
    assert resolved is None
    assert receivers[0].texts()[-1].startswith("[UNKNOWN")


def test_popbill_unreachable_says_how_many_reads_really_worked(env, sim):
    engine, _, settings = env
    outage = {"rule": "popbill_unreachable", "subject": "popbill"}
    # Popbill answers, but refuses the key: reachable, and 0 of 2 reads worked.
    wrong_key = dataclasses.replace(settings, secret_key=Secret("d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDA="))
    with PopbillClient(wrong_key) as client:
        service.check_balances(engine, client, wrong_key, now=T0)
    with engine.connect() as conn:
        summary = conn.execute(select(Alert.summary).where(Alert.rule == "popbill_unreachable")).scalar()
    assert alert_state(engine, **outage) == "ok"
    assert summary.startswith("Popbill answers again (0 of 2 balance reads worked); 2 failed: "), summary
    # The sandbox's credentials on the real hosts: nothing is sent, so whether Popbill answers is unknown.
    sandbox_on_real_hosts = dataclasses.replace(Settings(), alert_threshold=Decimal("1000"), alert_runway_days=0)
    with PopbillClient(sandbox_on_real_hosts) as client:
        readings = service.check_balances(engine, client, sandbox_on_real_hosts, now=T0 + dt.timedelta(minutes=30))
        assert client.stats.http_requests == 0
    assert all(r.balance is None and not r.answered for r in readings)
    assert alert_state(engine, **outage) == "unknown"


def test_snapshots_are_kept_for_members_and_partner(env, sim):
    engine, _, _ = env
    check(env, T0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(BalanceSnapshot.subject, BalanceSnapshot.balance).order_by(BalanceSnapshot.subject)
        ).all()
    assert rows == [("member", sim.world.balance(CORP)), ("partner", Decimal(sim.world.config.partner_balance))]


def test_partner_threshold(env, sim, receivers):
    engine, client, settings = env
    high = dataclasses.replace(settings, partner_threshold=Decimal("99999999"))
    check((engine, client, high), T0)
    assert alert_state(engine, subject="partner") == "firing"
    assert any(t.startswith("[FIRING] low_balance partner") for t in receivers[0].texts())


def test_channel_down_is_retried_then_delivered(env, sim, receivers):
    engine, _, settings = env
    hook, _ = receivers
    hook.fail_next = 2
    sim.set_balance(CORP, "10")
    check(env, T0)
    with engine.connect() as conn:
        failed = conn.execute(
            select(Notification.attempts, Notification.last_error, Notification.next_attempt_at)
            .where(Notification.channel == "webhook")
        ).one()  # fmt: skip
    assert failed.attempts == 1 and "HTTP 500" in failed.last_error and failed.next_attempt_at > T0
    assert deliver(engine, settings, now=T0) == {"sent": 0, "failed": 0}  # not due yet
    assert deliver(engine, settings, now=T0 + dt.timedelta(minutes=5))["failed"] == 1
    assert deliver(engine, settings, now=T0 + dt.timedelta(hours=1))["sent"] == 1
    assert hook.texts() == [hook.texts()[0]] and hook.texts()[0].startswith("[FIRING")
    with engine.connect() as conn:
        statuses = conn.execute(select(Notification.channel, Notification.status).order_by(Notification.channel)).all()
    assert statuses == [("email", "sent"), ("log", "sent"), ("webhook", "sent")]


def test_runway_rule_uses_the_last_seven_days_of_synced_usage(env, sim):
    engine, client, settings = env
    sync_member(engine, client, CORP, "usage", today=sim.world.today())
    now = sim.world.now().astimezone(dt.UTC)
    since = now - dt.timedelta(days=7)
    use = sum(
        Decimal(r["txPoint"]) for r in sim.world.usage_truth(CORP)
        if r["txType"] == 2 and dt.datetime.strptime(r["txDT"], "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone(dt.timedelta(hours=9))) >= since
    )  # fmt: skip
    runway = dataclasses.replace(settings, alert_threshold=Decimal("0"), alert_runway_days=100000)
    readings = service.check_balances(engine, client, runway, now=now)
    reading = next(r for r in readings if r.subject == CORP)
    daily = (use / 7).quantize(Decimal("0.01"))
    assert use > 0 and reading.daily_use == daily
    assert reading.days_left == (sim.world.balance(CORP) / daily).quantize(Decimal("0.1"))
    assert alert_state(engine, rule="runway") == "firing"


def test_alerts_test_command_reaches_every_channel(env, receivers):
    engine, _, settings = env
    service.send_test(engine, settings)
    assert deliver(engine, settings) == {"sent": 3, "failed": 0}
    assert receivers[0].texts() == ["[TEST] ledger alert channels work"]
    assert "[TEST]" in receivers[1].messages[0]


def test_webhook_failure_never_reveals_the_url(env, sim):
    engine, _, settings = env
    secret_url = "http://127.0.0.1:1/services/T000/B000/SECRET-TOKEN"
    down = dataclasses.replace(settings, alert_webhook_url=Secret(secret_url), smtp_host=None)
    service.send_test(engine, down)
    deliver(engine, down)
    with engine.connect() as conn:
        errors = conn.execute(text("SELECT string_agg(coalesce(last_error, ''), ' ') FROM notifications")).scalar()
    assert "unreachable" in errors and "SECRET-TOKEN" not in errors
    with engine.connect() as conn:
        assert (
            conn.execute(select(func.count()).select_from(Notification).where(Notification.status == "failed")).scalar()
            == 1
        )
