"""`ledger simulator` in one process and `ledger popbill balance` in another, as the README says."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from decimal import Decimal

import pytest

from ledger.simulator import SimConfig, World

LEDGER = [sys.executable, "-m", "ledger"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def simulator_process():
    port = free_port()
    proc = subprocess.Popen(
        [*LEDGER, "simulator", "--port", str(port), "--seed", "5"], stderr=subprocess.PIPE, text=True
    )
    try:
        first_line = proc.stderr.readline()  # printed once the socket listens
        assert f"127.0.0.1:{port}" in first_line, first_line
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_"))}
    env.update(env_extra or {})
    return subprocess.run([*LEDGER, *args], capture_output=True, text=True, env=env, timeout=60)


def test_balance_one_liner_against_the_simulator(simulator_process):
    url = simulator_process
    result = run("popbill", "balance", "1234567890", env_extra={"POPBILL_API_URL": url, "LINKHUB_AUTH_URL": url})
    assert result.returncode == 0, result.stderr
    # An independent world with the same seed and day holds the same history.
    assert Decimal(result.stdout.strip()) == World(SimConfig(seed=5)).balance("1234567890")


def test_bad_corp_num_is_a_clear_error_with_nonzero_exit(simulator_process):
    url = simulator_process
    result = run("popbill", "balance", "12-34", env_extra={"POPBILL_API_URL": url, "LINKHUB_AUTH_URL": url})
    assert result.returncode != 0
    assert "CorpNum" in result.stderr and "Traceback" not in result.stderr


def test_bad_setting_names_the_variable():
    result = run("popbill", "balance", "1234567890", env_extra={"POPBILL_IS_TEST": "perhaps"})
    assert result.returncode != 0 and "POPBILL_IS_TEST" in result.stderr
