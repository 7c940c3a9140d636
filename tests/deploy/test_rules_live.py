"""The shipped rules and dashboard against Debian's Prometheus scraping a seeded ledger: `ledger
metrics serve`'s endpoints (in this process) and a worker's own metrics. A member that never
synced fires LedgerMemberNeverSynced, the partner's threshold comes from its metric, and every
dashboard query returns data."""

from __future__ import annotations

import dataclasses
import json
import threading
from decimal import Decimal

import pytest
from prometheus_client import start_http_server
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from ledger.alerts.service import check_balances
from ledger.health.heartbeat import beat_tick
from ledger.members.service import MemberInput, add_member
from ledger.metrics.ledger_state import LedgerMetrics
from ledger.metrics.process import ROWS_WRITTEN, TASK_SECONDS
from ledger.metrics.server import make_metrics_server
from ledger.pending.models import TrackedItem
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from tests.conftest import client_settings, small_config
from tests.deploy.test_prometheus_rules import DEPLOY, dashboard_expr
from tests.services import free_port, prometheus_query, shipped_rules, start_prometheus
from tests.waiting import wait_for

SYNCED, NEVER = "1234567890", "2208112345"
DEPLOYMENT = "live"


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=5)) as simulator:
        yield simulator


def test_never_synced_member_fires_and_every_dashboard_query_returns_data(committed, sim, tmp_path):
    settings = dataclasses.replace(client_settings(sim), alert_threshold=Decimal("1000"), alert_runway_days=0,
                                   partner_threshold=Decimal("1000000000"), reconcile_max_sync_age=3600,
                                   deployment=DEPLOYMENT)  # fmt: skip
    with Session(committed) as session:
        add_member(session, MemberInput(SYNCED, threshold=Decimal("5000")))
        add_member(session, MemberInput(NEVER))
        session.commit()
    with committed.begin() as conn:  # added two hours ago, never synced since: past the hour allowed
        conn.execute(text("UPDATE members SET created_at = now() - interval '2 hours' WHERE corp_num = :c"), {"c": NEVER})
    with PopbillClient(settings) as client:
        for kind in ("payments", "usage", "refunds"):
            sync_member(committed, client, SYNCED, kind, today=sim.world.today())
        check_balances(committed, client, settings)
    beat_tick(committed)
    with committed.begin() as conn:
        member_id = conn.execute(text("SELECT id FROM members WHERE corp_num = :c"), {"c": SYNCED}).scalar()
        conn.execute(insert(TrackedItem).values(member_id=member_id, kind="settle", code="0123456789012345678"))

    state = LedgerMetrics(committed, settings)
    state.members.get(wait=True)
    server = make_metrics_server("127.0.0.1", 0, state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ledger_target = [f"127.0.0.1:{server.server_address[1]}"]
    worker_port = free_port()
    worker_server, _ = start_http_server(worker_port, addr="127.0.0.1")  # this process's worker metrics
    labels = {"deployment": DEPLOYMENT}
    prometheus = start_prometheus(tmp_path / "prometheus", rules=shipped_rules(tmp_path / "rules"), jobs=[
        {"job_name": "ledger", "targets": ledger_target, "labels": labels},
        {"job_name": "ledger-members", "targets": ledger_target, "metrics_path": "/metrics/members", "labels": labels},
        {"job_name": "ledger-worker", "targets": [f"127.0.0.1:{worker_port}"], "labels": labels},
    ])  # fmt: skip
    try:
        wait_for(lambda: prometheus_query(prometheus, 'up{job="ledger-worker"} == 1'), timeout=30, what="a first scrape")
        # The worker's work, while Prometheus watches: calls (one retried, one refused), a task, rows written.
        sim.inject("status", status=503, count=1, path="/POPBILL_TEST/Point")
        with PopbillClient(settings) as client:
            client.get_balance(SYNCED)
            sim.world.close_member(NEVER)
            with pytest.raises(Exception, match="(?i)."):
                client.get_balance(NEVER)
        TASK_SECONDS.labels("ledger.sync.members", "ok").observe(0.2)
        ROWS_WRITTEN.labels("usage", "inserted").inc(3)

        def firing(name: str) -> list[dict]:
            alerts = prometheus_query(prometheus, f'ALERTS{{alertname="{name}", alertstate="firing"}}')
            return [a["metric"] for a in alerts]

        wait_for(lambda: firing("LedgerMemberNeverSynced"), timeout=30, what="LedgerMemberNeverSynced")
        assert {a["kind"] for a in firing("LedgerMemberNeverSynced")} == {"payments", "usage", "refunds"}
        # The partner's balance against LEDGER_PARTNER_THRESHOLD, exported: no literal in the rule.
        wait_for(lambda: firing("LedgerLowBalance"), timeout=30, what="the partner's LedgerLowBalance")
        (partner,) = firing("LedgerLowBalance")
        assert partner["subject"] == "partner" and partner["deployment"] == DEPLOYMENT

        dashboard = json.loads((DEPLOY / "grafana" / "ledger.json").read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        for name in ("deployment", "member"):
            query = variables[name]["query"]["query"].replace("$deployment", DEPLOYMENT)
            label = query.split(",")[-1].strip(" )")
            series = prometheus_query(prometheus, query.split("label_values(")[1].rsplit(",", 1)[0])
            assert {s["metric"][label] for s in series}, query
        queries = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]

        def empty() -> list[str]:
            return [f"{title}: {expr}" for title, expr in queries
                    if not prometheus_query(prometheus, dashboard_expr(expr, deployment=DEPLOYMENT, member=SYNCED))]  # fmt: skip

        try:
            wait_for(lambda: not empty(), timeout=30, what="every dashboard query to return data")
        except AssertionError:
            assert empty() == []  # names the panels and queries that returned nothing
    finally:
        prometheus.stop()
        server.shutdown()
        server.server_close()
        worker_server.shutdown()
        worker_server.server_close()
