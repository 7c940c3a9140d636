"""The alert pipeline as shipped: the ledger's per-member alerts, Debian's Alertmanager running
deploy/alertmanager/alertmanager.yml (only the receiver and the waits changed) and, where
liveness is concerned, Debian's Prometheus running deploy/prometheus/alerts.yml. One
Alertmanager serves the module; each test has a `deployment` label of its own."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
import types
import uuid
from decimal import Decimal

import pytest
import requests
from sqlalchemy import text

from ledger.alerts import alertmanager
from ledger.alerts.rules import Check, evaluate
from ledger.alerts.service import POPBILL, UNREACHABLE
from ledger.secret import Secret
from ledger.settings import Settings
from tests.receivers import WebhookReceiver
from tests.scheduling.test_celery import broker, process_env, processes  # noqa: F401 - the same fixtures
from tests.services import (
    free_port,
    prometheus_query,
    shipped_alertmanager_config,
    shipped_rules,
    start_alertmanager,
    start_prometheus,
)
from tests.test_cli_ledger import ledger
from tests.waiting import wait_for

GROUP_INTERVAL = 2.0  # seconds, the shipped 5m cut for the test


@pytest.fixture(scope="module")
def receiver():
    hook = WebhookReceiver()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def am(tmp_path_factory, receiver):
    config = shipped_alertmanager_config(receiver.url, group_wait="1s", group_interval=f"{GROUP_INTERVAL:.0f}s")
    server = start_alertmanager(tmp_path_factory.mktemp("alertmanager"), receiver.url, config=config)
    yield server
    server.stop()


@pytest.fixture
def settings(am) -> Settings:
    return dataclasses.replace(Settings(), alertmanager_url=Secret(am.url), deployment=f"t-{uuid.uuid4().hex[:10]}")


def fire_low_balance(engine, corp_nums: list[str]) -> None:
    """Members whose low-balance alert is firing, as a check run leaves them."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO members (corp_num, name) SELECT c, 'member ' || c FROM unnest(CAST(:c AS text[])) c"),
                     {"c": corp_nums})  # fmt: skip
        conn.execute(text("""
            INSERT INTO alerts (subject, rule, member_id, state, consecutive, value, threshold, summary, fired_at,
                                last_notified_at, checked_at)
            SELECT m.corp_num, 'low_balance', m.id, 'firing', 1, 10, 1000, 'balance 10 is below 1000', now(), now(), now()
            FROM members m WHERE m.corp_num = ANY(:c)"""), {"c": corp_nums})  # fmt: skip


def am_alerts(am, deployment: str, **filters) -> list[dict]:
    matchers = [f'deployment="{deployment}"'] + [f'{k}="{v}"' for k, v in filters.items()]
    return requests.get(am.url + "/api/v2/alerts", params={"filter": matchers}, timeout=10).json()


def notifications(hook, deployment: str, alertname: str | None = None) -> list[dict]:
    return [n for n in list(hook.received) if n.get("groupLabels", {}).get("deployment") == deployment
            and (alertname is None or n["groupLabels"].get("alertname") == alertname)]  # fmt: skip


def by_subject(alerts: list[dict]) -> dict[str, dict]:
    return {a["labels"]["subject"]: a["status"] for a in alerts}


def test_a_thousand_low_members_are_one_alert_each_in_one_group_and_one_notification(committed, am, receiver, settings):
    corps = [str(7000000000 + n) for n in range(1000)]
    fire_low_balance(committed, corps)
    assert alertmanager.push(committed, settings) == 1000
    d = settings.deployment
    wait_for(lambda: notifications(receiver, d), timeout=30, what="Alertmanager's notification")

    found = am_alerts(am, d)
    assert sorted(a["labels"]["corp_num"] for a in found) == corps  # exactly one alert per member
    assert {a["labels"]["alertname"] for a in found} == {"LedgerLowBalance"}
    assert {tuple(sorted(a["labels"])) for a in found} == {  # one label set: no name, nothing that may change
        ("alertname", "corp_num", "deployment", "rule", "severity", "source", "subject")}
    groups = requests.get(am.url + "/api/v2/alerts/groups", params={"filter": f'deployment="{d}"'}, timeout=10).json()
    assert len(groups) == 1 and len(groups[0]["alerts"]) == 1000

    assert alertmanager.push(committed, settings) == 1000  # the next round re-posts them all
    time.sleep(2 * GROUP_INTERVAL + 1)  # waiting for a notification that must not come
    (sent,) = notifications(receiver, d)
    assert sent["status"] == "firing" and len(sent["alerts"]) == 1000
    # A firing alert's lease, not a resolve: no resolved_at; the lease outlasts Prometheus's report.
    (one,) = am_alerts(am, d, corp_num=corps[0])
    assert "resolved_at" not in one["annotations"] and one["annotations"]["state"] == "firing"


def test_mute_makes_an_alertmanager_silence_and_unmute_expires_it(committed, am, settings):
    held, other = "7100000001", "7100000002"
    fire_low_balance(committed, [held, other])
    alertmanager.push(committed, settings)
    env = {"LEDGER_ALERTMANAGER_URL": am.url, "LEDGER_DEPLOYMENT": settings.deployment}
    muted = ledger("alerts", "mute", held, "--for", "2h", "-m", "deposit promised on Friday", "--by", "ops-kim",
                   env_extra=env)  # fmt: skip
    assert muted.returncode == 0, muted.stderr
    assert "Alertmanager silence" in muted.stdout
    silences = [s for s in requests.get(am.url + "/api/v2/silences", timeout=10).json()
                if {"name": "deployment", "value": settings.deployment, "isRegex": False, "isEqual": True} in s["matchers"]]  # fmt: skip
    (silence,) = silences
    assert silence["status"]["state"] == "active" and silence["createdBy"] == "ops-kim"
    assert silence["comment"] == "deposit promised on Friday"
    assert {(m["name"], m["value"]) for m in silence["matchers"]} == {("deployment", settings.deployment), ("subject", held)}

    def states() -> dict[str, dict]:
        return by_subject(am_alerts(am, settings.deployment))

    wait_for(lambda: states()[held]["state"] == "suppressed", timeout=20, what="the silence to hold the member back")
    assert states()[held]["silencedBy"] == [silence["id"]] and states()[other]["state"] == "active"

    listed = ledger("alerts", "mutes", "--json", env_extra=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    (ours,) = [r for r in rows if r["source"] == "ledger"]
    assert ours["alertmanager_silence_id"] == silence["id"] and ours["subject"] == held
    assert silence["id"] in [r["id"] for r in rows if r["source"] == "alertmanager"]  # Alertmanager's, beside ours

    ended = ledger("alerts", "unmute", str(ours["id"]), env_extra=env)
    assert ended.returncode == 0, ended.stderr
    answer = requests.get(f"{am.url}/api/v2/silence/{silence['id']}", timeout=10).json()
    assert answer["status"]["state"] == "expired"
    wait_for(lambda: states()[held]["state"] == "active", timeout=20, what="the member's alert to be active again")


def test_popbill_unreachable_inhibits_only_the_members_alerts_of_its_deployment(committed, am, settings):
    members = ["7200000001", "7200000002"]
    fire_low_balance(committed, members)
    with committed.begin() as conn:
        outage = Check(POPBILL, UNREACHABLE, None, True, Decimal(3), Decimal(3), summary="3 of 3 balance reads failed")
        assert evaluate(conn, outage, settings, dt_now()).kind == "firing"
    assert alertmanager.push(committed, settings) == 3
    elsewhere = dataclasses.replace(settings, deployment=settings.deployment + "-b")
    now = dt_now().isoformat()
    by_hand = [
        # The same member's alert in another deployment: the outage is not its own.
        {"labels": alertmanager.labels(elsewhere, "low_balance", members[0], members[0]), "startsAt": now},
        # A Prometheus alert of this deployment that does not depend on Popbill.
        {"labels": {"alertname": "LedgerOutboxFailing", "deployment": settings.deployment, "source": "prometheus",
                    "severity": "warning", "channel": "webhook", "job": "ledger", "instance": "m:9464"},
         "startsAt": now},
    ]  # fmt: skip
    assert requests.post(am.url + "/api/v2/alerts", json=by_hand, timeout=10).status_code == 200

    def states() -> dict[tuple[str, str], dict]:
        found = am_alerts(am, settings.deployment) + am_alerts(am, elsewhere.deployment)
        return {(a["labels"]["deployment"], a["labels"]["alertname"] + ":" + a["labels"].get("subject", "")): a["status"]
                for a in found}  # fmt: skip

    d, other = settings.deployment, elsewhere.deployment
    wait_for(lambda: all(states()[(d, f"LedgerLowBalance:{m}")]["state"] == "suppressed" for m in members), timeout=20,
             what="the members' alerts to be inhibited")  # fmt: skip
    found = states()
    assert all(found[(d, f"LedgerLowBalance:{m}")]["inhibitedBy"] for m in members)
    assert found[(d, "LedgerPopbillUnreachable:popbill")]["state"] == "active"
    assert found[(other, f"LedgerLowBalance:{members[0]}")]["state"] == "active"
    assert found[(d, "LedgerOutboxFailing:")]["state"] == "active"


def dt_now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def test_worker_and_beat_stopped_no_false_resolve_and_prometheus_reports_it(
    committed, am, receiver, settings, tmp_path,
    broker,  # noqa: F811 - the fixture imported above
    processes,  # noqa: F811
):  # fmt: skip
    repost, lease = 1, 6  # seconds: re-posted every second, each post good for six
    d = settings.deployment
    members = ["7300000001", "7300000002", "7300000003"]
    fire_low_balance(committed, members)
    metrics_port = free_port()
    env = process_env(types.SimpleNamespace(url=f"http://127.0.0.1:{free_port()}"), tmp_path,
                      LEDGER_ALERTMANAGER_URL=am.url, LEDGER_DEPLOYMENT=d, LEDGER_ALERTMANAGER_REPOST=str(repost),
                      LEDGER_ALERTMANAGER_LEASE=str(lease), LEDGER_WORKER_METRICS_PORT=str(metrics_port),
                      LEDGER_WATCHDOG_INTERVAL="1", LEDGER_HEALTH_SYNC_DEADLINE="off")  # fmt: skip
    prometheus = start_prometheus(
        tmp_path / "prometheus", rules=shipped_rules(tmp_path / "rules"), alertmanager=am.url,
        jobs=[{"job_name": "ledger-worker", "targets": [f"127.0.0.1:{metrics_port}"], "labels": {"deployment": d}}],
    )  # fmt: skip
    try:
        worker = processes.start(["worker", "-c", "1"], env, tmp_path, "worker")
        beat = processes.start(["beat"], env, tmp_path, "beat")
        # The worker posts the open alerts itself: nothing here pushes them.
        wait_for(lambda: notifications(receiver, d, "LedgerLowBalance"), timeout=60, what="the worker's first post")
        wait_for(lambda: prometheus_query(prometheus, 'up{job="ledger-worker"} == 1'), timeout=30,
                 what="Prometheus to scrape the worker")  # fmt: skip
        for proc in (worker, beat):
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, beat):
            proc.wait(timeout=30)
        stopped = time.monotonic()

        # Prometheus owns liveness: its LedgerNoWorker reaches the receiver.
        wait_for(lambda: [n for n in notifications(receiver, d, "LedgerNoWorker") if n["status"] == "firing"],
                 timeout=60, what="LedgerNoWorker from Prometheus")  # fmt: skip
        # The leases lapse (nobody re-posts), and Alertmanager holds the alerts as resolved...
        wait_for(lambda: not am_alerts(am, d, alertname="LedgerLowBalance"), timeout=lease + 30,
                 what="the ledger's alerts to lapse in Alertmanager")  # fmt: skip
        time.sleep(2 * GROUP_INTERVAL + 1)  # ...and the RESOLVED that must not come has had its chance
        assert time.monotonic() - stopped >= 3 * repost
        sent = notifications(receiver, d, "LedgerLowBalance")
        assert [n["status"] for n in sent] == ["firing"], sent  # no false RESOLVED for still-low members
        assert {a["labels"]["corp_num"] for a in sent[0]["alerts"]} == set(members)
    finally:
        prometheus.stop()


def test_the_shipped_ops_receiver_relays_alertmanager_notifications(committed, am, receiver, settings, caplog):
    """`ledger alerts relay`: Alertmanager's notification (a real one) becomes a log line per alert
    and one Slack-compatible message; a webhook that refuses gets a 502, so Alertmanager retries."""
    from ledger.alerts.relay import make_relay_server

    fire_low_balance(committed, ["7400000001", "7400000002"])
    alertmanager.push(committed, settings)
    wait_for(lambda: notifications(receiver, settings.deployment), timeout=30, what="Alertmanager's notification")
    (notification,) = notifications(receiver, settings.deployment)
    slack = WebhookReceiver()
    relay = make_relay_server("127.0.0.1", 0, dataclasses.replace(settings, alert_webhook_url=Secret(slack.url)))
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{relay.server_address[1]}/alertmanager"
    try:
        with caplog.at_level("INFO", logger="ledger.alerts.relay"):
            assert requests.post(url, json=notification, timeout=10).status_code == 200
        (message,) = slack.texts()
        assert message.splitlines()[0] == f"[FIRING] LedgerLowBalance ({settings.deployment}): 2 firing"
        assert "7400000001: balance 10 is below 1000" in message
        lines = [r for r in caplog.records if r.name == "ledger.alerts.relay"]
        assert len(lines) == 2 and all(r.levelname == "WARNING" for r in lines)
        slack.fail_next = 1
        assert requests.post(url, json=notification, timeout=10).status_code == 502
        assert requests.post(url, data=b"not json", timeout=10).status_code == 400
    finally:
        relay.shutdown()
        relay.server_close()
        slack.close()
