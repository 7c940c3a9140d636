"""The shipped Prometheus rules, Alertmanager config and Grafana dashboard, checked by Debian's
promtool and amtool; the rules' unit tests run against a small series file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.services import PROMTOOL, need

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def dashboard_expr(expr: str, *, deployment: str = ".*", member: str = "1234567890") -> str:
    """A panel's query as Grafana sends it, its variables filled in."""
    return (expr.replace("$__rate_interval", "1m").replace("$topk", "10").replace("$deployment", deployment)
            .replace("$member", member))  # fmt: skip


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=60)


def test_rules_check_and_unit_tests_pass():
    promtool = need(PROMTOOL, "prometheus")
    checked = run(promtool, "check", "rules", "alerts.yml", cwd=DEPLOY / "prometheus")
    assert checked.returncode == 0 and "SUCCESS: 12 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", "alerts_test.yml", cwd=DEPLOY / "prometheus")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    config = run(promtool, "check", "config", "prometheus.yml", cwd=DEPLOY / "prometheus")
    assert config.returncode == 0, config.stdout + config.stderr


def test_rules_cover_what_the_issue_asks_and_use_exported_names():
    rules = [r for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert {"LedgerMetricsDown", "LedgerNoWorker", "LedgerWorkerDown", "LedgerBeatDown", "LedgerNightlySyncLate",
            "LedgerMemberNeverSynced", "LedgerLowBalance", "LedgerSyncStale", "LedgerOutboxFailing",
            "LedgerOpenDiscrepancies", "LedgerPopbillErrorRate", "LedgerTaskFailures"} == set(names)  # fmt: skip
    assert len(names) == len(set(names))
    # One source per alert: no rule for what the ledger posts itself (one alertname per rule).
    from ledger.alerts.alertmanager import POSTED_RULES, alert_name

    posted = {alert_name(rule) for rule in POSTED_RULES}
    (partner,) = [r for r in rules if r["alert"] in posted]
    assert partner["labels"]["subject"] == "partner"  # the partner's balance only; members' are the ledger's
    # Thresholds come from the ledger's settings, exported as metrics, not literals.
    assert "ledger_partner_threshold_points" in partner["expr"] and "100000" not in partner["expr"]
    # Every rule is marked as Prometheus's, which the inhibit rules match on.
    assert all(r["labels"]["source"] == "prometheus" for r in rules)
    from ledger.metrics import ledger_state, member_series

    source = Path(ledger_state.__file__).read_text() + Path(member_series.__file__).read_text()
    used = set()
    for rule in rules:
        used |= set(re.findall(r"\b(ledger_[a-z_]+)", rule["expr"]))
    worker_metrics = {"ledger_popbill_calls_total", "ledger_task_duration_seconds_count"}
    for name in used - worker_metrics:
        assert f'"{name}"' in source, name


def test_alertmanager_inhibit_rules_compare_labels():
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    assert all(rule.get("equal") for rule in config["inhibit_rules"])
    assert config["route"]["group_by"] == ["deployment", "alertname"]
    (ops,) = config["receivers"]
    assert ops["name"] == "ops" and ops["webhook_configs"][0]["url"].startswith("http://alert-relay:")


def test_grafana_dashboard_queries_parse(tmp_path):
    promtool = need(PROMTOOL, "prometheus")
    dashboard = json.loads((DEPLOY / "grafana" / "ledger.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    assert "${datasource}" not in json.dumps(dashboard["templating"]["list"][0])
    assert any("balance" in t.lower() for t in titles) and any("runway" in t.lower() for t in titles)
    assert any("sync" in t.lower() for t in titles) and any("error" in t.lower() for t in titles)
    assert any("pending" in t.lower() for t in titles)
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"datasource", "member", "deployment"}
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    # No datasource uid of some Grafana: every panel and query names the variable.
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert all(t["datasource"]["uid"] == "${datasource}" for p in panels for t in p["targets"])
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    # Per-member series only ever as top-k or one chosen member, never every member.
    for expr in exprs:
        if "ledger_member_" in expr:
            assert re.search(r"(bottomk|topk)\(\$topk|corp_num=\"\$member\"", expr), expr
    assert any("ledger_task_duration_seconds" in e for e in exprs)  # Celery
    assert any("scrape_duration_seconds" in e for e in exprs) and any("scrape_samples_scraped" in e for e in exprs)
    exprs = [dashboard_expr(e) for e in exprs]
    # Every query as a recording rule, for promtool to parse.
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    checked = run(promtool, "check", "rules", "dashboard.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alertmanager_config_is_valid():
    amtool = shutil.which("amtool")
    need(amtool, "prometheus-alertmanager")
    checked = run(amtool, "check-config", "alertmanager.yml", cwd=DEPLOY / "alertmanager")
    assert checked.returncode == 0, checked.stdout + checked.stderr
