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
