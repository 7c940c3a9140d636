"""The Alertmanager channel against Debian's real Alertmanager on a free loopback port."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
import requests
from sqlalchemy.orm import Session

from ledger.alerts import alertmanager, service
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.secret import Secret
from ledger.simulator import Simulator
from tests.conftest import client_settings, small_config
from tests.services import start_alertmanager
from tests.waiting import wait_for

LOW, FINE = "1234567890", "2208112345"


@pytest.fixture
def am(tmp_path, hook):
    server = start_alertmanager(tmp_path / "alertmanager", hook.url)
    yield server
    server.stop()


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=10)) as simulator:
        yield simulator


@pytest.fixture
def env(clean_engine, sim, am):
    settings = dataclasses.replace(
        client_settings(sim), alert_threshold=Decimal("1000"), partner_threshold=Decimal("0"), alert_runway_days=0,
        alertmanager_url=Secret(am.url),
    )  # fmt: skip
    with Session(clean_engine) as session:
        add_member(session, MemberInput(LOW, name="Low Co"))
        add_member(session, MemberInput(FINE, name="Fine Co"))
        session.commit()
    with PopbillClient(settings) as client:
        yield clean_engine, client, settings


def am_alerts(am, **params) -> list[dict]:
    return requests.get(am.url + "/api/v2/alerts", params=params, timeout=5).json()


def delivered(hook, status: str) -> list[dict]:
    """Alerts in the webhook notifications Alertmanager sent with this status."""
    return [a for message in hook.received for a in message.get("alerts", []) if a["status"] == status]


def test_firing_alerts_reach_alertmanager_with_labels_and_a_resolve_ends_them(env, sim, am, hook):
    engine, client, settings = env
    sim.set_balance(LOW, "10")
    sim.set_balance(FINE, "50000")
    service.check_balances(engine, client, settings)
    assert alertmanager.push(engine, settings) == 1
    (alert,) = am_alerts(am)
    labels = alert["labels"]
    assert labels == {"alertname": "LedgerLowBalance", "rule": "low_balance", "subject": LOW, "corp_num": LOW,
                      "severity": "warning", "source": "ledger", "deployment": "ledger"}  # fmt: skip
    assert alert["annotations"]["description"] == "balance 10 is below 1000"
    assert alert["annotations"]["member"] == "Low Co"  # a name may change: an annotation, not a label
    assert alert["status"]["state"] == "active"
    wait_for(lambda: delivered(hook, "firing"), timeout=20, what="Alertmanager to notify the receiver")
    assert delivered(hook, "firing")[0]["labels"]["corp_num"] == LOW

    alertmanager.push(engine, settings)  # re-posted while firing: still one alert, still active
    assert [a["labels"]["corp_num"] for a in am_alerts(am)] == [LOW]

    sim.set_balance(LOW, "5000")
    service.check_balances(engine, client, settings)
    assert alertmanager.push(engine, settings) == 1  # the resolve, with endsAt
    wait_for(lambda: am_alerts(am) == [], timeout=20, what="Alertmanager to end the alert")
    wait_for(lambda: delivered(hook, "resolved"), timeout=20, what="the resolved notification")
    (resolved,) = delivered(hook, "resolved")
    assert resolved["labels"]["corp_num"] == LOW
    # A resolve a check saw, told apart from a lease that lapsed: it says so and when.
    assert resolved["annotations"]["state"] == "resolved" and resolved["annotations"]["resolved_at"]


def test_a_silence_made_in_alertmanager_keeps_the_receiver_from_getting_the_alert(env, sim, am, hook):
    engine, client, settings = env
    now = dt.datetime.now(dt.UTC)
    silence = {
        "matchers": [{"name": "corp_num", "value": LOW, "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(), "endsAt": (now + dt.timedelta(hours=1)).isoformat(),
        "createdBy": "ops", "comment": "deposit promised",
    }  # fmt: skip
    answer = requests.post(am.url + "/api/v2/silences", json=silence, timeout=5)
    assert answer.status_code == 200, answer.text
    sim.set_balance(LOW, "10")
    sim.set_balance(FINE, "20")  # both low; only FINE's may reach the receiver
    service.check_balances(engine, client, settings)
    assert alertmanager.push(engine, settings) == 2
    wait_for(lambda: delivered(hook, "firing"), timeout=20, what="the unsilenced alert's notification")
    states = {a["labels"]["corp_num"]: a["status"] for a in am_alerts(am)}
    assert states[LOW]["state"] == "suppressed" and states[LOW]["silencedBy"] == [answer.json()["silenceID"]]
    assert states[FINE]["state"] == "active"
    # Alertmanager groups by corp_num: the unsilenced group was flushed; the silenced one never is.
    assert {a["labels"]["corp_num"] for a in delivered(hook, "firing")} == {FINE}


def test_refusal_is_reported_without_the_url(env, sim):
    engine, client, settings = env
    sim.set_balance(LOW, "10")
    service.check_balances(engine, client, settings)
    down = dataclasses.replace(settings, alertmanager_url=Secret("http://user:hunter2@127.0.0.1:1"))
    with pytest.raises(RuntimeError) as caught:
        alertmanager.push(engine, down)
    assert "hunter2" not in str(caught.value) and "unreachable" in str(caught.value)
