"""The deposit, refund, tracking, balance and alert commands as a user runs them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from ledger.pending.models import TrackedItem
from ledger.simulator import Simulator
from tests.conftest import add_members, small_config
from tests.receivers import WebhookReceiver
from tests.test_cli_ledger import ledger

CORP = "1234567890"


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=20, settle_after_polls=1)) as simulator:
        yield simulator


@pytest.fixture
def hosts(clean_engine, sim):
    env = {"POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url, "LEDGER_PENDING_FIRST_POLL": "0"}
    assert ledger("members", "add", CORP, "--threshold", "1", env_extra=env).returncode == 0
    return env


def refund_request(points: str) -> list[str]:
    holder = ["--bank", "국민", "--account", "2", "--holder", "h", "--contact", "c", "--tel", "t", "--reason", "r"]
    return ["refund", "request", CORP, "--points", points, *holder]


def tracked(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(TrackedItem)).scalar()


def test_payment_request_then_poll_settles_and_syncs(clean_engine, sim, hosts):
    result = ledger("payment", "request", CORP, "--amount", "11000", "--depositor", "(주)입금", "--name", "홍길동",
                    "--email", "a@b.kr", "--hp", "010-0000-0000", "--yes", env_extra=hosts)  # fmt: skip
    assert result.returncode == 0, result.stderr
    code = result.stdout.split()[2].rstrip(":")
    assert len(code) == 18 and tracked(clean_engine) == 1
    listed = json.loads(ledger("pending", "list", "--json", env_extra=hosts).stdout)
    assert [i["code"] for i in listed] == [code]
    polled = ledger("pending", "poll", env_extra=hosts)
    assert polled.returncode == 0 and "done" in polled.stdout
    assert json.loads(ledger("pending", "list", "--json", env_extra=hosts).stdout) == []
    status = {s["kind"]: s for s in json.loads(ledger("status", "--json", env_extra=hosts).stdout)}
    assert status["payments"]["last_status"] == "succeeded"  # the settled deposit's history was synced


def test_balances_and_alerts_commands(clean_engine, sim, hosts):
    hook = WebhookReceiver()
    try:
        env = {**hosts, "LEDGER_ALERT_WEBHOOK_URL": hook.url, "LEDGER_ALERT_RUNWAY_DAYS": "0"}
        sim.set_balance(CORP, "0.5")
        result = ledger("balances", "--json", env_extra=env)
        assert result.returncode == 0, result.stderr
        readings = {r["subject"]: r for r in json.loads(result.stdout)}
        assert readings[CORP]["balance"] == "0.5" and readings[CORP]["alerts"] == "low_balance"
        firing = json.loads(ledger("alerts", "list", "--firing", "--json", env_extra=env).stdout)
        assert [(a["subject"], a["rule"]) for a in firing] == [(CORP, "low_balance")]
        assert ledger("alerts", "mute", CORP, "--for", "2d", env_extra=env).returncode == 0
        test = ledger("alerts", "test", env_extra=env)
        assert test.returncode == 0 and "sent 2" in test.stdout
        assert hook.texts()[0].startswith("[FIRING") and hook.texts()[-1].startswith("[TEST")
    finally:
        hook.close()


def test_balances_of_many_members_show_what_needs_a_look_and_the_counts(clean_engine, sim, hosts):
    from ledger.cli.commands.alerts import DETAIL_READINGS

    others = [f"{2000000000 + n:010d}" for n in range(DETAIL_READINGS)]
    add_members(clean_engine, others)
    low = others[:3]
    for corp in low:
        sim.set_balance(corp, "0.5")
    env = {**hosts, "LEDGER_ALERT_RUNWAY_DAYS": "0", "LEDGER_ALERT_THRESHOLD": "1"}
    result = ledger("balances", "--wide", env_extra=env)
    assert result.returncode == 0, result.stderr
    listed = [line for line in result.stdout.splitlines() if any(corp in line for corp in [CORP, *others])]
    assert sorted(corp for line in listed for corp in low if corp in line) == sorted(low)
    assert len(listed) == len(low)  # the members whose alerts moved, not a row for each of 201
    assert f"{DETAIL_READINGS + 2:,} balances checked: {DETAIL_READINGS + 2:,} read, 0 not read, 3 under" in result.stdout
    assert "alerts moved for 3" in result.stdout
    every = json.loads(ledger("balances", "--json", env_extra=env).stdout)
    assert len(every) == DETAIL_READINGS + 2  # the members and the partner


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            [
                "payment",
                "request",
                CORP,
                "--amount",
                "-5",
                "--depositor",
                "a",
                "--name",
                "b",
                "--email",
                "c",
                "--hp",
                "d",
            ],
            "--amount",
        ),
        (
            [
                "payment",
                "request",
                "123",
                "--amount",
                "5",
                "--depositor",
                "a",
                "--name",
                "b",
                "--email",
                "c",
                "--hp",
                "d",
            ],
            "CorpNum",
        ),
        (["payment", "request", CORP, "--amount", "5"], "--depositor"),
        (refund_request("abc"), "--points"),
        (refund_request("9999999"), "refundable"),  # within LEDGER_MONEY_MAX_WON, above the balance
        (["track", "bogus", CORP, "X"], "'bogus' is not one of 'settle', 'refund'"),
        (["track", "settle", "9999999999", "X"], "not a member"),
        (["alerts", "mute", CORP, "--for", "forever"], "--for"),
        (["alerts", "mute", "12", "--for", "2d"], "CorpNum"),
    ],
)
def test_bad_input_is_refused_and_nothing_sent(clean_engine, sim, hosts, args, needle):
    result = ledger(*args, env_extra=hosts)
    assert result.returncode != 0 and needle in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert tracked(clean_engine) == 0
    assert sim.requests("/Payment", method="POST") == [] and sim.requests("/Refund", method="POST") == []
