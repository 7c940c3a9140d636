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

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


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


def start_alertmanager(workdir: Path, receiver_url: str, *, group_by: tuple[str, ...] = ("corp_num",)) -> Server:
    binary = need(ALERTMANAGER, "prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    labels = ", ".join(group_by)
    config.write_text(
        f"""
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
"""
    )
    port = free_port()
    args = [binary, f"--config.file={config}", f"--storage.path={workdir / 'data'}", "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
    return Server(args, "/-/ready", port, workdir, "alertmanager")


def start_prometheus(workdir: Path, target: str) -> Server:
    binary = need(PROMETHEUS, "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: ledger
    static_configs:
      - targets: ["{target}"]
"""
    )
    port = free_port()
    args = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
    return Server(args, "/-/ready", port, workdir, "prometheus")
