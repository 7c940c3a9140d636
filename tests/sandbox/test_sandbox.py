"""`ledger sandbox` past the happy path (README's First hour covers that): a supervisor killed
outright, then `up` again; status and env when it is down. Every process it starts is ended."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.test_first_hour import Shell


@pytest.fixture
def shell():
    root = Path(tempfile.mkdtemp(prefix="ledger-sandbox-"))  # see test_first_hour: not under pytest's tmp
    runner = Shell(root)
    try:
        yield runner
    finally:
        runner.clean_up()
        shutil.rmtree(root, ignore_errors=True)


def state(shell: Shell) -> dict:
    return json.loads((shell.home / ".local/share/popbill-ledger/sandbox/state.json").read_text())


def test_a_killed_sandbox_comes_back_with_its_data_and_ports(shell):
    code, output = shell.run("ledger sandbox up --no-sync --days 5")
    assert code == 0, output
    first = state(shell)
    os.kill(first["pid"], signal.SIGKILL)  # no chance to stop its PostgreSQL
    try:
        psutil.Process(first["pid"]).wait(10)
    except psutil.NoSuchProcess:
        pass

    code, output = shell.run("ledger sandbox status")
    assert code == 1 and "not running" in output
    code, output = shell.run("ledger sandbox env")
    assert code == 1 and "ledger sandbox up" in output

    code, output = shell.run("ledger sandbox up --no-sync --days 5")
    assert code == 0, output
    second = state(shell)
    assert second["pid"] != first["pid"]
    assert (second["db_port"], second["sim_port"]) == (first["db_port"], first["sim_port"])  # saved connections work
    assert "5 sample members (0 added)" in output  # the data survived

    code, output = shell.run('eval "$(ledger sandbox env)" && ledger members list --json')
    assert code == 0 and len(json.loads(output)) == 5, output

    code, output = shell.run("ledger sandbox down")
    assert code == 0 and "down" in output
    assert not shell.our_processes(), "sandbox down left processes running"

    # A clean down and up keeps the ports too.
    code, output = shell.run("ledger sandbox up --no-sync --days 5 && ledger sandbox down")
    assert code == 0 and f"127.0.0.1:{first['db_port']}/ledger" in output, output
    assert not shell.our_processes()
