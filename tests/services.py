"""Debian's Prometheus and Alertmanager, started by the tests on free loopback ports with their
own storage in a temp dir (bash .ci/run installs the packages when absent)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def need(binary: str | None, package: str) -> str:
    if binary is None:
        pytest.skip(f"{package} is not installed: apt-get install -y {package} (bash .ci/run does)")
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Poll the server's readiness endpoint: it has no other way to tell us it is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready: {log.read_text()[-2000:]}")


class Server:
    def __init__(self, args: list[str], ready_path: str, port: int, workdir: Path, name: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / f"{name}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            wait_ready(self.url + ready_path, self.proc, self.log)
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_alertmanager(workdir: Path, receiver_url: str, *, group_by: tuple[str, ...] = ("corp_num",),
                       config: str | None = None) -> Server:  # fmt: skip
    """Alertmanager posting to `receiver_url`; `config`: a whole configuration instead (the shipped one)."""
    binary = need(ALERTMANAGER, "prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "alertmanager.yml"
    labels = ", ".join(group_by)
    path.write_text(config or f"""
route:
  receiver: hook
  group_by: [{labels}]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {receiver_url}
        send_resolved: true
""")
    port = free_port()
    args = [binary, f"--config.file={path}", f"--storage.path={workdir / 'data'}", "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
    return Server(args, "/-/ready", port, workdir, "alertmanager")


def shipped_alertmanager_config(receiver_url: str, *, group_wait: str = "1s", group_interval: str = "2s") -> str:
    """deploy/alertmanager/alertmanager.yml as shipped, posting to the test's receiver, with the
    waits short enough for a test (routing, grouping and inhibit rules untouched)."""
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    config["route"].update(group_wait=group_wait, group_interval=group_interval)
    (receiver,) = config["receivers"]
    receiver["webhook_configs"][0]["url"] = receiver_url
    return yaml.safe_dump(config)


def shipped_rules(workdir: Path, *, for_: str = "1s") -> Path:
    """deploy/prometheus/alerts.yml as shipped, each rule's `for` cut to `for_` (a test cannot wait minutes)."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = for_
    path = workdir / "alerts.yml"
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(rules))
    return path


def start_prometheus(workdir: Path, target: str | None = None, *, jobs: list[dict] | None = None,
                     rules: Path | None = None, alertmanager: str | None = None, interval: str = "1s") -> Server:  # fmt: skip
    """Prometheus scraping `target` (job `ledger`) or `jobs` (each: job_name, targets, and
    optionally metrics_path and labels), evaluating `rules` and alerting `alertmanager`."""
    binary = need(PROMETHEUS, "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    jobs = jobs or [{"job_name": "ledger", "targets": [target]}]
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": j["job_name"], "metrics_path": j.get("metrics_path", "/metrics"),
             "static_configs": [{"targets": j["targets"], "labels": j.get("labels", {})}]}
            for j in jobs
        ],
    }  # fmt: skip
    if rules:
        config["rule_files"] = [str(rules)]
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.split("://")[-1]]}]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    args = [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
    return Server(args, "/-/ready", port, workdir, "prometheus")


def prometheus_query(server: Server, expr: str) -> list[dict]:
    answer = requests.get(server.url + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]
