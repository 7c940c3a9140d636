"""`ledger doctor` against real parts: the simulator, PostgreSQL, Redis; and settings refused
at load by every command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from ledger.doctor import checks
from ledger.doctor.service import diagnose
from ledger.popbill import PopbillClient
from ledger.popbill.errors import InvalidRequestError
from ledger.settings import Settings, is_linkhub_host
from ledger.simulator import Simulator
from tests.cli.helpers import run
from tests.conftest import (
    TEST_BROKER_URL,
    TEST_DATABASE_URL,
    create_database,
    drop_database,
    small_config,
    unique_name,
)

BROKER_URL = TEST_BROKER_URL


def ledger(*args, env=None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args], capture_output=True, text=True, env=clean, timeout=120
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sim():
    with Simulator(small_config(start=None)) as simulator:
        yield simulator


@pytest.fixture
def healthy_env(engine, sim):
    return {
        "POPBILL_API_URL": sim.url,
        "LINKHUB_AUTH_URL": sim.url,
        "LEDGER_DATABASE_URL": TEST_DATABASE_URL,
        "LEDGER_BROKER_URL": BROKER_URL,
        "LEDGER_PARTNER_CORP_NUM": "1234567890",
    }


def lines_by_check(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        status, _, rest = line.partition("  ")
        name = rest.strip()[:11].strip()
        found[name] = status.strip()
    return found


def test_every_check_passes_on_a_healthy_setup(healthy_env, sim):
    result = ledger("doctor", env=healthy_env)
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = lines_by_check(result.stdout)
    assert set(statuses) >= {"settings", "secret key", "LinkID", "credentials", "auth host", "API host", "clock",
                             "database", "token", "broker", "alerts"}  # fmt: skip
    assert set(statuses.values()) == {"ok"}
    assert "the sandbox key: valid base64" in result.stdout  # the simulator's key, the default
    # The token check really issued a token and read the partner balance over HTTP.
    assert sim.requests("/POPBILL_TEST/Token") and sim.requests("/POPBILL_TEST/PartnerPoint")
    assert "GetPartnerBalance = 5000000" in result.stdout


def test_each_broken_part_fails_its_own_line(healthy_env, sim, tmp_path):
    name = unique_name("doctor_empty")
    empty_db = make_url(create_database(name))
    try:
        sim.skew_clock(3600)  # Popbill's clock an hour ahead
        broken = {
            **healthy_env,
            "LEDGER_DATABASE_URL": empty_db.render_as_string(hide_password=False),
            "LEDGER_BROKER_URL": f"redis://127.0.0.1:{closed_port()}/0",
            "LEDGER_ALERT_WEBHOOK_URL": "hooks.example.com/T000/secret-token",
            "LEDGER_SMTP_HOST": "127.0.0.1",
        }
        result = ledger("doctor", env=broken)
    finally:
        drop_database(name)
    assert result.returncode == 1
    statuses = lines_by_check(result.stdout)
    assert statuses["clock"] == "FAIL" and "POPBILL_USE_LOCAL_TIME=false" in result.stdout
    assert statuses["database"] == "FAIL" and "ledger db upgrade" in result.stdout
    assert statuses["broker"] == statuses["webhook"] == statuses["mail"] == "FAIL"
    assert statuses["settings"] == statuses["auth host"] == "ok"
    assert "secret-token" not in result.stdout + result.stderr
    # Signed by a clock an hour off, the token request itself is refused, and the line says why.
    assert statuses["token"] == "FAIL"
    token_line = next(line for line in result.stdout.splitlines() if "token" in line[:20])
    assert "the clock is off" in token_line and "POPBILL_SECRET_KEY" not in token_line
    assert "6 checks failed" in result.stderr

    # On Popbill's own clock, the same skew is no longer a failure.
    again = ledger("doctor", env={**healthy_env, "POPBILL_USE_LOCAL_TIME": "false"})
    assert lines_by_check(again.stdout)["clock"] == lines_by_check(again.stdout)["token"] == "ok", again.stdout


def test_wrong_key_fails_the_token_check(healthy_env):
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDA="
    result = ledger("doctor", env={**healthy_env, "POPBILL_SECRET_KEY": wrong})
    assert result.returncode == 1
    assert lines_by_check(result.stdout)["token"] == "FAIL"
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.split()}
    # The sandbox's LinkID with a key of one's own: the key is not called the sandbox key.
    assert "POPBILL_SECRET_KEY: valid base64" in result.stdout and "sandbox key" not in result.stdout
    assert "check POPBILL_LINK_ID and POPBILL_SECRET_KEY" in lines["token"], lines["token"]


def test_an_unreachable_database_is_not_blamed_on_a_missing_member(sim):
    env = {"POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url, "LEDGER_BROKER_URL": BROKER_URL,
           "LEDGER_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{closed_port()}/ledger"}  # fmt: skip
    found = {f.name: f for f in diagnose(env)}
    assert found["database"].failed and "unreachable" in found["database"].detail
    assert found["token"].status == "skip" and "the database check failed" in found["token"].detail
    assert "add a member" not in found["token"].detail


def test_the_sandbox_key_is_never_meant_for_real_hosts(sim):
    assert checks.sandbox_key_stays_home(Settings()).failed  # defaults: sandbox key, real hosts
    assert not checks.sandbox_key_stays_home(Settings().with_hosts(sim.url)).failed
    real = Settings.from_env(
        {"POPBILL_LINK_ID": "PARTNER", "POPBILL_SECRET_KEY": "c3VwZXItc2VjcmV0LWtleS1kby1ub3QtbGVhay0wMDA="}
    )
    assert not checks.sandbox_key_stays_home(real).failed
    assert is_linkhub_host("https://static-auth.linkhub.co.kr") and not is_linkhub_host("http://127.0.0.1:1")
    # Nor does the client send them: the token request is refused before anything leaves.
    with PopbillClient(Settings()) as client, pytest.raises(InvalidRequestError) as refused:
        client.get_balance("1234567890")
    assert refused.value.parameter == "POPBILL_LINK_ID" and "ledger sandbox env" in str(refused.value)
    assert client.stats.http_requests == 0


@pytest.mark.parametrize(
    ("key", "needle"),
    [("not base64!", "not valid base64"), ("c2hvcnQ=", "decodes to 5 bytes")],
)
def test_every_command_refuses_a_bad_secret_key_in_one_line(key, needle):
    # In-process (click's runner): the settings are read by the same code as in a console process.
    for command in (["status"], ["members", "list"], ["sync"], ["db", "url"]):
        result = run(*command, env={"POPBILL_SECRET_KEY": key})
        assert result.exit_code != 0, command
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("Error: POPBILL_SECRET_KEY") and needle in line, command
        assert key not in line  # even a malformed secret is not echoed
    # Asking for help still works with a broken environment.
    assert run("members", "list", "--help", env={"POPBILL_SECRET_KEY": key}).exit_code == 0
    # The doctor reports it as a failing line instead of refusing to start.
    doctor = run("doctor", env={"POPBILL_SECRET_KEY": key})
    assert doctor.exit_code == 1 and doctor.stdout.startswith("FAIL  settings") and needle in doctor.stdout
