"""The shipped Prometheus rules, Alertmanager config and Grafana dashboard, checked by Debian's
promtool and amtool; the rules' unit tests run against a small series file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.services import PROMTOOL, need

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=60)


def test_rules_check_and_unit_tests_pass():
    promtool = need(PROMTOOL, "prometheus")
    checked = run(promtool, "check", "rules", "alerts.yml", cwd=DEPLOY / "prometheus")
    assert checked.returncode == 0 and "SUCCESS: 7 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", "alerts_test.yml", cwd=DEPLOY / "prometheus")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    config = run(promtool, "check", "config", "prometheus.yml", cwd=DEPLOY / "prometheus")
    assert config.returncode == 0, config.stdout + config.stderr


def test_rules_cover_what_the_issue_asks_and_use_exported_names():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {r["alert"] for r in rules}
    assert {"LedgerLowBalance", "LedgerSyncStale", "LedgerBeatDown", "LedgerOutboxFailing",
            "LedgerOpenDiscrepancies"} <= names  # fmt: skip
    from ledger.metrics import ledger_state

    exported = {
        "ledger_member_balance_points", "ledger_member_low_balance_threshold_points", "ledger_partner_balance_points",
        "ledger_sync_oldest_age_seconds", "ledger_heartbeat_age_seconds", "ledger_notifications",
        "ledger_notifications_oldest_unsent_age_seconds", "ledger_discrepancies_open", "ledger_database_up",
    }  # fmt: skip
    source = (Path(ledger_state.__file__)).read_text()
    for name in exported:
        assert f'"{name}"' in source, name


def test_grafana_dashboard_queries_parse(tmp_path):
    promtool = need(PROMTOOL, "prometheus")
    dashboard = json.loads((DEPLOY / "grafana" / "ledger.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    assert any("balance" in t.lower() for t in titles) and any("runway" in t.lower() for t in titles)
    assert any("sync" in t.lower() for t in titles) and any("error" in t.lower() for t in titles)
    assert any("pending" in t.lower() for t in titles)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
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
