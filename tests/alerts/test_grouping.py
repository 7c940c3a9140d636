"""Grouped notifications, Popbill-unreachable inhibition, silences, the outbox listing, stable
notification ids and redacted logs, against the simulator and real local receivers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select

from ledger import logs
from ledger.alerts import service
from ledger.alerts.models import Alert, Notification
from ledger.alerts.outbox import deliver
from ledger.errors import UserInputError
from ledger.members.models import Member
from ledger.popbill import PopbillClient
from ledger.secret import Secret
from ledger.simulator import Simulator
from tests.conftest import client_settings, small_config
from tests.services import free_port
from tests.test_cli_ledger import ledger

MEMBERS = [str(1000000000 + i * 7919) for i in range(1000)]
T0 = dt.datetime(2026, 11, 25, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=1, usage_per_day=0.5)) as simulator:
        yield simulator


def add_members(engine, corps) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Member), [{"corp_num": c, "name": f"member {c}"} for c in corps])


def settings_for(sim, hook, **overrides):
    options = {"alert_threshold": Decimal("99999999"), "partner_threshold": Decimal("0"), "alert_runway_days": 0,
               "alert_webhook_url": Secret(hook.url), "retry_attempts": 1}  # fmt: skip
    options.update(overrides)
    return dataclasses.replace(client_settings(sim), **options)


def outbox(engine) -> list[tuple[str, str | None, str]]:
    with engine.connect() as conn:
        return conn.execute(select(Notification.channel, Notification.rule, Notification.kind).order_by(Notification.id)).all()


def test_a_thousand_low_members_make_one_notification_per_channel(clean_engine, sim, hook):
    add_members(clean_engine, MEMBERS)
    settings = settings_for(sim, hook)
    with PopbillClient(settings) as client:
        readings = service.check_balances(clean_engine, client, settings, now=T0)
    assert sum(1 for r in readings if "low_balance" in r.alerts) == len(MEMBERS)
    assert outbox(clean_engine) == [("log", "low_balance", "firing"), ("webhook", "low_balance", "firing")]
    assert deliver(clean_engine, settings, now=T0) == {"sent": 2, "failed": 0}
    (message,) = hook.received
    assert message["counts"]["firing"] == len(MEMBERS)
    assert sorted(a["subject"] for a in message["alerts"]) == sorted(MEMBERS)
    assert message["text"].startswith(f"[FIRING] low_balance: {len(MEMBERS)} started firing")



def test_a_later_run_groups_the_repeats_and_the_resolved(clean_engine, sim, hook):
    members = MEMBERS[:6]
    add_members(clean_engine, members)
    settings = settings_for(sim, hook)
    with PopbillClient(settings) as client:
        service.check_balances(clean_engine, client, settings, now=T0)
    deliver(clean_engine, settings, now=T0)
    # Later, at the repeat: half recover (a threshold of 1), half are still low.
    recovered = members[:3]
    high = settings_for(sim, hook, alert_threshold=Decimal("1"))
    with clean_engine.begin() as conn:
        conn.execute(Member.__table__.update().where(Member.corp_num.in_(members[3:]))
                     .values(low_balance_threshold=Decimal("99999999")))  # fmt: skip
    with PopbillClient(high) as client:
        service.check_balances(clean_engine, client, high, now=T0 + dt.timedelta(hours=5))
    deliver(clean_engine, high, now=T0 + dt.timedelta(hours=5))
    assert len(hook.received) == 2
    second = hook.received[1]
    assert second["counts"] == {"firing": 0, "repeat": 3, "unknown": 0, "resolved": 3}
    assert second["text"].startswith("[REPEAT] low_balance: 3 still firing, 3 resolved")
    resolved = sorted(a["subject"] for a in second["alerts"] if a["change"] == "resolved")
    assert resolved == sorted(recovered)
    assert all("no longer below" in a["summary"] for a in second["alerts"] if a["change"] == "resolved")


def test_popbill_unreachable_is_one_alert_and_inhibits_the_unknowns(clean_engine, sim, hook):
    add_members(clean_engine, MEMBERS[:200])
    settings = settings_for(sim, hook)
    with PopbillClient(settings) as client:
        service.check_balances(clean_engine, client, settings, now=T0)
    deliver(clean_engine, settings, now=T0)
    assert len(hook.received) == 1
    down = settings.with_hosts(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with PopbillClient(down) as client:
        readings = service.check_balances(clean_engine, client, down, now=T0 + dt.timedelta(minutes=30))
    assert all(r.error and r.unreachable for r in readings)
    deliver(clean_engine, down, now=T0 + dt.timedelta(minutes=30))
    assert len(hook.received) == 2
    message = hook.received[1]
    assert message["rule"] == "popbill_unreachable" and message["kind"] == "firing"
    assert message["text"].startswith("[FIRING] popbill_unreachable popbill: 201 of 201 balance reads failed")
    with clean_engine.connect() as conn:
        unknown = conn.execute(select(func.count()).select_from(Alert).where(Alert.state == "unknown")).scalar()
    assert unknown == 200 + 1  # the states still say what is known: nothing (members and the partner)

    with PopbillClient(settings) as client:  # Popbill is back
        service.check_balances(clean_engine, client, settings, now=T0 + dt.timedelta(hours=1))
    deliver(clean_engine, settings, now=T0 + dt.timedelta(hours=1))
    texts = [m["text"].splitlines()[0] for m in hook.received[2:]]
    assert "[RESOLVED] popbill_unreachable popbill: Popbill answers again (201 of 201 balance reads worked)" in texts


def test_silences_by_member_and_by_rule(clean_engine, sim, hook):
    add_members(clean_engine, MEMBERS[:3])
    settings = settings_for(sim, hook)
    silenced = service.silence(clean_engine, subject=MEMBERS[0], rule=None, duration=dt.timedelta(days=1),
                               comment="deposit promised", created_by="kim", now=T0)  # fmt: skip
    with PopbillClient(settings) as client:
        service.check_balances(clean_engine, client, settings, now=T0)
    deliver(clean_engine, settings, now=T0)
    (message,) = hook.received
    assert sorted(a["subject"] for a in message["alerts"]) == sorted(MEMBERS[1:3])
    listed = service.list_silences(clean_engine, now=T0)
    assert [(s["id"], s["subject"], s["created_by"], s["comment"]) for s in listed] == [
        (silenced.id, MEMBERS[0], "kim", "deposit promised")
    ]
    service.silence(clean_engine, subject=None, rule="low_balance", duration=dt.timedelta(days=1), comment="noisy",
                    created_by="kim", now=T0)  # fmt: skip
    service.unsilence(clean_engine, silenced.id)
    with PopbillClient(settings) as client:
        service.check_balances(clean_engine, client, settings, now=T0 + dt.timedelta(hours=5))
    assert deliver(clean_engine, settings, now=T0 + dt.timedelta(hours=5)) == {"sent": 0, "failed": 0}


@pytest.mark.parametrize(
    ("duration", "rule", "needle"),
    [
        ("0d", None, "from 1s to a year"),
        ("367d", None, "from 1s to a year"),
        ("9999999999w", None, "a duration such as"),
        ("99999999w", None, "from 1s to a year"),
        ("2d", "nonsense", "--rule"),
    ],
)
def test_mute_refuses_bad_durations_and_rules(clean_engine, duration, rule, needle):
    add_members(clean_engine, MEMBERS[:1])
    with pytest.raises(UserInputError, match=needle):
        service.silence(clean_engine, subject=MEMBERS[0], rule=rule, duration=service.parse_duration(duration),
                        comment="x", created_by="kim")  # fmt: skip
    assert service.list_silences(clean_engine) == []


def test_mute_mutes_unmute_commands(clean_engine):
    add_members(clean_engine, MEMBERS[:1])
    stranger = ledger("alerts", "mute", "9999999999", "--for", "2d")
    assert stranger.returncode != 0 and "not a member" in stranger.stderr and "Traceback" not in stranger.stderr
    too_long = ledger("alerts", "mute", MEMBERS[0], "--for", "367d")
    assert too_long.returncode != 0 and "from 1s to a year" in too_long.stderr
    assert service.list_silences(clean_engine) == []
    made = ledger("alerts", "mute", MEMBERS[0], "--for", "2d", "-m", "promised a deposit", "--by", "lee")
    assert made.returncode == 0, made.stderr
    (listed,) = json.loads(ledger("alerts", "mutes", "--json").stdout)
    assert (listed["subject"], listed["comment"], listed["created_by"]) == (MEMBERS[0], "promised a deposit", "lee")
    assert ledger("alerts", "unmute", str(listed["id"])).returncode == 0
    assert service.list_silences(clean_engine) == []


def test_outbox_command_shows_why_a_notification_failed(clean_engine, sim, hook):
    add_members(clean_engine, MEMBERS[:1])
    hook.fail_next = 1
    settings = settings_for(sim, hook)
    with PopbillClient(settings) as client:
        service.check_balances(clean_engine, client, settings)
    deliver(clean_engine, settings)
    rows = {r["channel"]: r for r in json.loads(ledger("alerts", "outbox", "--json").stdout)}
    assert rows["webhook"]["status"] == "failed" and "HTTP 500" in rows["webhook"]["last_error"]
    assert rows["webhook"]["attempts"] == 1 and rows["webhook"]["next_attempt_at"]
    assert rows["log"]["status"] == "sent" and rows["log"]["last_error"] is None
    assert [r["channel"] for r in service.list_outbox(clean_engine, status="failed")] == ["webhook"]
    table = ledger("alerts", "outbox")
    assert table.returncode == 0 and "HTTP 500" in table.stdout


def test_a_retried_slow_receiver_sees_the_same_notification_id(clean_engine, sim, hook):
    add_members(clean_engine, MEMBERS[:1])
    hook.slow_next, hook.slow_seconds = 2, 1.5  # got it, but answers after the sender gave up
    settings = settings_for(sim, hook, alert_webhook_timeout=0.3)
    with PopbillClient(settings) as client:
        service.check_balances(clean_engine, client, settings, now=T0)
    assert deliver(clean_engine, settings, now=T0)["failed"] == 1
    assert deliver(clean_engine, settings, now=T0 + dt.timedelta(minutes=5))["failed"] == 1
    assert deliver(clean_engine, settings, now=T0 + dt.timedelta(hours=1))["sent"] == 1
    assert len(hook.keys) == 3 and len(set(hook.keys)) == 1 and hook.keys[0]
    assert {m["notification_id"] for m in hook.received} == {hook.keys[0]}
    with clean_engine.connect() as conn:
        key = conn.execute(select(Notification.key).where(Notification.channel == "webhook")).scalar()
    assert str(key) == hook.keys[0]


def test_no_secret_reaches_the_log_even_at_debug(clean_engine, sim, hook):
    add_members(clean_engine, MEMBERS[:1])
    token_url = hook.url + "/T0001/B0002/XOXB-SECRET-TOKEN?token=QUERY-SECRET"
    settings = settings_for(sim, hook, alert_webhook_url=Secret(token_url), log_level="DEBUG",
                            database_url=Secret("postgresql://ledger:DB-PASSWORD@127.0.0.1:1/ledger"))  # fmt: skip
    stream = io.StringIO()
    handler = logs.configure(settings, stream=stream)
    try:
        with PopbillClient(settings) as client:
            service.check_balances(clean_engine, client, settings)
        assert deliver(clean_engine, settings)["sent"] == 2
        # Whatever a library might log: credentials in a URL and query strings.
        logging.getLogger("some.library").debug("connecting to redis://:BROKER-PASSWORD@cache:6379/0 "
                                                "and https://api.example/x?key=API-KEY")  # fmt: skip
        try:
            raise RuntimeError(f"failed to post to {token_url}")
        except RuntimeError:
            logging.getLogger("ledger.test").exception("with a traceback")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    output = stream.getvalue()
    assert '"POST [redacted] HTTP/1.1" 200' in output  # urllib3's DEBUG request line, its path hidden
    for secret in ("XOXB-SECRET-TOKEN", "QUERY-SECRET", "DB-PASSWORD", "BROKER-PASSWORD", "API-KEY"):
        assert secret not in output, secret
    assert output.count("[redacted]") >= 4 and "RuntimeError" in output


def test_json_logs_carry_the_bound_context(clean_engine):
    settings = dataclasses.replace(client_settings_plain(), log_format="json", log_level="INFO")
    stream = io.StringIO()
    handler = logs.configure(settings, stream=stream)
    try:
        logs.bind(corp_num="1234567890", kind="usage", task_id="t-1", run_id=7)
        logging.getLogger("ledger.sync").info("synced %s rows of %s", 12, "https://x/y?secret=1")
        logs.unbind()
        logging.getLogger("ledger.sync").warning("plain")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "synced 12 rows of https://x/y?[redacted]"
    assert (first["corp_num"], first["kind"], first["task_id"], first["run_id"]) == ("1234567890", "usage", "t-1", 7)
    assert first["level"] == "info" and first["logger"] == "ledger.sync" and "timestamp" in first
    assert "corp_num" not in second and second["level"] == "warning"


def client_settings_plain():
    from ledger.settings import Settings

    return Settings()
