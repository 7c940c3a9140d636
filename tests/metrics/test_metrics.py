"""`ledger metrics serve` scraped by Debian's real Prometheus, and parsed, against the database;
the worker's process metrics counted from real calls to the simulator."""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import signal
import subprocess
import sys
import threading
from decimal import Decimal

import pytest
import requests
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from ledger.alerts import service
from ledger.alerts.outbox import deliver
from ledger.members.service import MemberInput, add_member
from ledger.metrics.ledger_state import ledger_tables, render
from ledger.metrics.process import observe_call
from ledger.pending.models import TrackedItem
from ledger.popbill import PopbillClient
from ledger.settings import Settings
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from tests.conftest import TEST_DATABASE_URL, client_settings, small_config
from tests.services import free_port, start_prometheus
from tests.waiting import wait_for

MEMBERS = ["1234567890", "2208112345"]


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=10)) as simulator:
        yield simulator


@pytest.fixture
def filled(clean_engine, sim):
    """Two members synced and balance-checked, a pending deposit, an alert and its notifications."""
    settings = dataclasses.replace(client_settings(sim), alert_threshold=Decimal("1000"), alert_runway_days=0,
                                   partner_threshold=Decimal("0"))  # fmt: skip
    with Session(clean_engine) as session:
        for corp in MEMBERS:
            add_member(session, MemberInput(corp))
        session.commit()
    sim.set_balance(MEMBERS[0], "10.5")
    with PopbillClient(settings) as client:
        for kind in ("usage", "payments"):
            sync_member(clean_engine, client, MEMBERS[1], kind, today=sim.world.today())
        service.check_balances(clean_engine, client, settings)
    deliver(clean_engine, settings)
    with clean_engine.begin() as conn:
        member_id = conn.execute(text("SELECT id FROM members WHERE corp_num = :c"), {"c": MEMBERS[0]}).scalar()
        conn.execute(insert(TrackedItem).values(member_id=member_id, kind="settle", code="0123456789012345678"))
        conn.execute(text("ANALYZE"))
    return clean_engine


def samples(exposition: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def db_value(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_exposition_names_help_and_values_match_the_database(filled, sim):
    exposition = render(filled, default_threshold=Decimal("1000")).decode()
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    assert all(name.startswith("ledger_") and families[name].documentation for name in families)
    assert all(families[name].type == "gauge" for name in families)
    got = samples(exposition)
    assert got[("ledger_database_up", ())] == 1
    assert got[("ledger_member_balance_points", (("corp_num", MEMBERS[0]),))] == 10.5
    assert got[("ledger_member_balance_points", (("corp_num", MEMBERS[1]),))] == float(sim.world.balance(MEMBERS[1]))
    # A member's own threshold only when it has one; the default is one series.
    assert ("ledger_member_low_balance_threshold_points", (("corp_num", MEMBERS[0]),)) not in got
    assert got[("ledger_default_low_balance_threshold_points", ())] == 1000
    assert got[("ledger_partner_threshold_points", ())] == 100000  # render() here: the default settings
    partner = db_value(filled, "SELECT balance FROM balance_snapshots WHERE member_id IS NULL")
    assert got[("ledger_partner_balance_points", ())] == float(partner)
    for table in ledger_tables():
        assert got[("ledger_table_rows", (("table", table),))] == db_value(filled, f'SELECT count(*) FROM "{table}"')
    assert got[("ledger_table_rows", (("table", "usages"),))] > 0
    # MEMBERS[1] synced usage and payments, not refunds: no "oldest kind" time until every kind has one.
    assert not [k for k in got if k[0] == "ledger_member_sync_oldest_success_timestamp_seconds"]
    assert not [k for k in got if k[0] == "ledger_member_sync_success_timestamp_seconds"]  # per kind: opt-in
    last = db_value(filled, "SELECT extract(epoch FROM last_success_at)::float8 FROM sync_states s JOIN members m "
                            "ON m.id = s.member_id WHERE corp_num = :c AND kind = 'usage'", c=MEMBERS[1])  # fmt: skip
    age = got[("ledger_sync_oldest_age_seconds", (("kind", "usage"),))]
    assert 0 <= age < db_value(filled, "SELECT extract(epoch FROM now())::float8 - :t", t=last) + 1
    assert got[("ledger_sync_never_succeeded_members", (("kind", "usage"),))] == 1
    assert got[("ledger_sync_never_succeeded_members", (("kind", "refunds"),))] == 2
    waited = db_value(filled, "SELECT extract(epoch FROM now() - min(created_at))::float8 FROM members")
    assert 0 <= got[("ledger_sync_never_succeeded_oldest_age_seconds", (("kind", "refunds"),))] <= waited + 1
    assert got[("ledger_pending_items", (("kind", "settle"), ("state", "pending")))] == 1
    assert got[("ledger_pending_oldest_age_seconds", (("kind", "settle"),))] >= 0
    assert got[("ledger_alerts", (("rule", "low_balance"), ("state", "firing")))] == 1
    assert got[("ledger_alerts", (("rule", "low_balance"), ("state", "ok")))] == 2  # the other member, the partner
    assert got[("ledger_notifications", (("channel", "log"), ("state", "sent")))] == 1
    assert got[("ledger_discrepancies_open", (("check", "balance_chain"),))] == 0


def test_per_member_series_can_be_switched_off_or_widened_to_every_kind(filled, sim):
    got = samples(render(filled, per_member=False).decode())
    assert not any(name.startswith("ledger_member_") and name != "ledger_members" for name, _ in got)
    assert got[("ledger_members", (("active", "true"),))] == 2
    assert ("ledger_sync_oldest_age_seconds", (("kind", "usage"),)) in got

    with PopbillClient(client_settings(sim)) as client:
        sync_member(filled, client, MEMBERS[1], "refunds", today=sim.world.today())
    wide = dataclasses.replace(Settings(), metrics_sync_per_kind=True)
    got = samples(render(filled, settings=wide).decode())
    times = {kind: db_value(filled, "SELECT extract(epoch FROM last_success_at)::float8 FROM sync_states s "
                                    "JOIN members m ON m.id = s.member_id WHERE corp_num = :c AND kind = :k",
                            c=MEMBERS[1], k=kind) for kind in ("payments", "usage", "refunds")}  # fmt: skip
    for kind, value in times.items():
        assert got[("ledger_member_sync_success_timestamp_seconds", (("corp_num", MEMBERS[1]), ("kind", kind)))] == value
    oldest = got[("ledger_member_sync_oldest_success_timestamp_seconds", (("corp_num", MEMBERS[1]),))]
    assert oldest == min(times.values())


def test_the_endpoint_answers_gzip_openmetrics_and_head(filled):
    """prometheus-client's server and negotiation: gzip to Accept-Encoding: gzip (a stream of
    several gzip members, read whole), OpenMetrics to Prometheus's Accept header, HEAD with no body."""
    from ledger.metrics.ledger_state import LedgerMetrics
    from ledger.metrics.server import make_metrics_server

    settings = dataclasses.replace(Settings(), alert_threshold=Decimal("1000"))
    state = LedgerMetrics(filled, settings)
    state.members.get(wait=True)  # the server asks for it as it starts; here, before the first request
    server = make_metrics_server("127.0.0.1", 0, state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        raw = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10).raw
        assert raw.headers["Content-Encoding"] == "gzip"
        body = raw.read(decode_content=False)
        assert len(body) == int(raw.headers["Content-Length"])
        text_ = gzip.decompress(body).decode()
        plain = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=10)
        assert "Content-Encoding" not in plain.headers and plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert samples(text_)[("ledger_database_up", ())] == 1
        assert samples(text_).keys() == samples(plain.text).keys()

        accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        om = requests.get(url, headers={"Accept": accept}, timeout=10)
        assert om.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        assert om.text.endswith("# EOF\n") and om.text.count("# EOF") == 1
        families = {f.name: f for f in openmetrics_families(om.text)}
        assert families["ledger_sync_never_succeeded_members"].samples[0].labels == {"kind": "payments"}

        members = requests.get(url + "/members", headers={"Accept": accept, "Accept-Encoding": "gzip"}, timeout=10)
        assert members.headers["Content-Encoding"] == "gzip" and members.text.endswith("# EOF\n")
        (balances,) = [f for f in openmetrics_families(members.text) if f.name == "ledger_member_balance_points"]
        assert {s.labels["corp_num"]: s.value for s in balances.samples}[MEMBERS[0]] == 10.5
        assert "ledger_member_balance_points" not in om.text  # /metrics stays small: no per-member series

        head = requests.head(url, timeout=10)
        assert head.status_code == 200 and head.content == b"" and head.headers["Content-Type"].startswith("text/plain")
        assert requests.get(url.replace("/metrics", "/other"), timeout=10).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_a_real_prometheus_scrapes_ledger_metrics_serve(filled, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    port = free_port()
    env.update(LEDGER_DATABASE_URL=TEST_DATABASE_URL)
    server = subprocess.Popen([sys.executable, "-m", "ledger", "metrics", "serve", "--port", str(port)], env=env,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert "serving metrics on" in server.stderr.readline()
        target = [f"127.0.0.1:{port}"]
        prometheus = start_prometheus(tmp_path / "prometheus", jobs=[
            {"job_name": "ledger", "targets": target},
            {"job_name": "ledger-members", "targets": target, "metrics_path": "/metrics/members"}])  # fmt: skip
        try:
            def query(expr: str) -> list[dict]:
                answer = requests.get(prometheus.url + "/api/v1/query", params={"query": expr}, timeout=5).json()
                return answer["data"]["result"]

            wait_for(lambda: query("ledger_member_balance_points") and query('ledger_table_rows{table="members"}'),
                     timeout=30, what="Prometheus's first scrapes of both jobs")  # fmt: skip
            balances = {r["metric"]["corp_num"]: Decimal(r["value"][1]) for r in query("ledger_member_balance_points")}
            assert balances[MEMBERS[0]] == Decimal("10.5")
            assert query('up{job="ledger"}')[0]["value"][1] == "1"
            assert query('up{job="ledger-members"}')[0]["value"][1] == "1"
            (rows,) = query('ledger_table_rows{table="members"}')
            assert rows["value"][1] == "2"
        finally:
            prometheus.stop()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0


def test_a_database_that_cannot_be_read_says_so(filled):
    from ledger.db.engine import make_engine
    from ledger.secret import Secret
    from ledger.settings import Settings

    broken = make_engine(dataclasses.replace(Settings(), database_url=Secret(f"postgresql://postgres@127.0.0.1:{free_port()}/x")))
    assert samples(render(broken).decode()) == {("ledger_database_up", ()): 0}


def test_worker_process_metrics_count_popbill_calls_and_retries(sim):
    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0

    calls_before = value("ledger_popbill_calls_total", call="GetBalance", outcome="ok")
    retries_before = value("ledger_popbill_retries_total", call="GetBalance")
    failed_before = value("ledger_popbill_calls_total", call="GetBalance", outcome="auth_error")
    timed_before = value("ledger_popbill_call_duration_seconds_count", call="GetBalance")
    sim.inject("status", status=503, count=1, path="/POPBILL_TEST/Point")
    with PopbillClient(client_settings(sim), observer=observe_call) as client:
        client.get_balance(MEMBERS[0])
        sim.world.close_member(MEMBERS[1])
        with pytest.raises(Exception, match=r"(?i)."):
            client.get_balance(MEMBERS[1])
    assert value("ledger_popbill_calls_total", call="GetBalance", outcome="ok") == calls_before + 1
    assert value("ledger_popbill_retries_total", call="GetBalance") == retries_before + 1
    assert value("ledger_popbill_calls_total", call="GetBalance", outcome="auth_error") == failed_before + 1
    assert value("ledger_popbill_call_duration_seconds_count", call="GetBalance") == timed_before + 2
    exposition = generate_latest(REGISTRY).decode()
    assert re.search(r"# HELP ledger_popbill_calls_total .+", exposition)
