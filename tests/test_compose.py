"""docker-compose.yml is valid (checked without a Docker engine) and wires the pipeline."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.fixture
def compose():
    command = compose_command()
    if command is None:
        pytest.skip("neither docker compose nor docker-compose is installed (bash .ci/run installs it)")
    return command


def config(compose, *profiles) -> dict:
    args = [*compose, "-f", str(ROOT / "docker-compose.yml")]
    for profile in profiles:
        args += ["--profile", profile]
    result = subprocess.run([*args, "config"], capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    import yaml

    return yaml.safe_load(result.stdout)


def test_services_and_wiring(compose):
    plain = config(compose)
    assert {"postgres", "rabbitmq", "migrate", "worker", "beat"} <= set(plain["services"])
    worker = plain["services"]["worker"]
    assert worker["command"][0] == "worker" and plain["services"]["beat"]["command"] == ["beat"]
    assert plain["services"]["migrate"]["command"] == ["db", "upgrade"]
    assert "migrate" in json.dumps(worker["depends_on"])
    sandbox = config(compose, "sandbox")
    assert sandbox["services"]["simulator"]["profiles"] == ["sandbox"]
    assert sandbox["services"]["simulator"]["command"][0] == "simulator"
    assert all(not plain["services"][s].get("profiles") for s in ("postgres", "rabbitmq", "migrate", "worker", "beat"))
    # The default broker is the durable RabbitMQ (README "Reliability"); Redis is opt-in.
    assert worker["environment"]["LEDGER_BROKER_URL"].startswith("amqp://")
    assert "rabbitmq" in json.dumps(worker["depends_on"])
    assert plain["services"].get("redis", {"profiles": ["redis"]})["profiles"] == ["redis"]
    # With no .env, the pipeline points at the simulator: `--profile sandbox up` runs it end to end.
    assert sandbox["services"]["worker"]["environment"]["POPBILL_API_URL"] == "http://simulator:8765"


def test_ops_profile_and_healthchecks(compose):
    plain = config(compose)
    # Only with --profile ops (`config` may list them, but marked with the profile).
    ops_services = ("prometheus", "alertmanager", "grafana", "flower", "metrics", "alert-relay")
    assert all(plain["services"].get(s, {"profiles": ["ops"]})["profiles"] == ["ops"] for s in ops_services)
    worker, beat = plain["services"]["worker"], plain["services"]["beat"]
    # The light entry (no CLI, SQLAlchemy or Celery), asking this container's own node.
    assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", "ledger.health", "worker"]
    assert beat["healthcheck"]["test"] == ["CMD", "python", "-m", "ledger.health", "beat"]
    assert worker["hostname"] == "worker"  # a stable node name, ledger@worker, across restarts
    # The grace period outlasts the worker's soft shutdown, so a stopped task is handed back, not killed.
    grace = worker["stop_grace_period"]
    grace_seconds = int(str(grace).rstrip("s")) if isinstance(grace, str) else grace
    assert grace_seconds > int(worker["environment"]["LEDGER_WORKER_SOFT_SHUTDOWN_TIMEOUT"])
    ops = config(compose, "ops")["services"]
    assert set(ops_services) <= set(ops)
    assert all(ops[s]["profiles"] == ["ops"] for s in ops_services)
    # Flower watches the broker the workers use, and needs no Redis (a profile of its own).
    assert ops["flower"]["environment"]["CELERY_BROKER_URL"] == worker["environment"]["LEDGER_BROKER_URL"]
    assert "redis" not in json.dumps(ops["flower"].get("depends_on", {}))
    # Alertmanager's `ops` receiver delivers to the relay shipped beside it.
    import yaml

    shipped = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    url = shipped["receivers"][0]["webhook_configs"][0]["url"]
    assert url.startswith("http://alert-relay:9095/") and ops["alert-relay"]["command"][:2] == ["alerts", "relay"]
    assert ops["metrics"]["command"][:2] == ["metrics", "serve"]
    mounts = json.dumps(ops["prometheus"]["volumes"]) + json.dumps(ops["grafana"]["volumes"])
    for shipped in ("deploy/prometheus/alerts.yml", "deploy/prometheus/prometheus.yml", "deploy/grafana/ledger.json"):
        assert (ROOT / shipped).is_file() and shipped.split("/")[-1] in mounts
