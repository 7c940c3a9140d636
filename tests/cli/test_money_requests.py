"""`ledger payment request` and `ledger refund request` show what will be sent, ask on a
terminal, need --yes from a script, and --dry-run sends nothing."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from ledger.members.service import MemberInput
from ledger.pending.models import TrackedItem
from ledger.simulator import Simulator
from tests.cli.helpers import add_members, run, subprocess_env
from tests.conftest import small_config
from tests.waiting import wait_for

CORP = "1234567890"
PAYMENT = ["payment", "request", CORP, "--amount", "110000", "--depositor", "(주)팝빌", "--name", "홍길동",
           "--email", "pay@example.kr", "--hp", "010-1234-5678"]  # fmt: skip
REFUND = ["refund", "request", CORP, "--points", "10", "--bank", "국민", "--account", "123-456", "--holder", "홍길동",
          "--contact", "홍길동", "--tel", "02-000-0000", "--reason", "해지"]  # fmt: skip


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=10)) as simulator:
        yield simulator


@pytest.fixture
def hosts(clean_engine, sim):
    add_members(clean_engine, MemberInput(CORP, name="팝빌 테스트상사"))
    return {"POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url}


def sent(sim) -> int:
    return len(sim.requests("/Payment", method="POST")) + len(sim.requests("/Refund", method="POST"))


def tracked(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sql_select(func.count()).select_from(TrackedItem)).scalar()


@pytest.mark.parametrize("args", [PAYMENT, REFUND])
def test_dry_run_shows_what_would_be_sent_and_sends_nothing(clean_engine, sim, hosts, args):
    result = run(*args, "--dry-run", env=hosts)
    assert result.exit_code == 0, result.output
    assert "nothing sent" in result.stdout and "1234567890 (팝빌 테스트상사)" in result.stderr
    assert ("settleCost    110000" if args is PAYMENT else "requestPoint  10") in result.stderr
    assert sent(sim) == 0 and tracked(clean_engine) == 0


@pytest.mark.parametrize("args", [PAYMENT, REFUND])
def test_a_script_must_say_yes(clean_engine, sim, hosts, args):
    refused = run(*args, env=hosts)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert sent(sim) == 0 and tracked(clean_engine) == 0
    done = run(*args, "--yes", env=hosts)
    assert done.exit_code == 0 and "tracked until it settles" in done.stdout, done.output
    assert sent(sim) == 1 and tracked(clean_engine) == 1


def reading_the_terminal(pid: int) -> bool:
    """The process sleeps in a terminal read (Linux); elsewhere, assume so."""
    try:
        with open(f"/proc/{pid}/wchan") as wchan:
            return wchan.read() in ("wait_woken", "n_tty_read", "do_select", "do_sys_poll", "poll_schedule_timeout")
    except OSError:
        return True


def on_a_terminal(args: list[str], hosts: dict, answer: str | signal.Signals) -> tuple[int, str]:
    """Run the command with stdin and stderr on a pseudo-terminal; answer its question."""
    env = subprocess_env(**hosts)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ledger", *args], stdin=follower, stderr=follower,
                            stdout=subprocess.PIPE, env=env, text=True)  # fmt: skip
    os.close(follower)
    seen, answered, deadline = "", False, time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                seen += os.read(leader, 4096).decode(errors="replace")
            except OSError:
                break
        if not answered and "Send it?" in seen:
            if isinstance(answer, signal.Signals):  # Ctrl-C or SIGTERM at the question
                # Once it waits in read(): a signal just before would be seen only after the read.
                wait_for(lambda: reading_the_terminal(proc.pid), what="the command to wait for an answer")
                proc.send_signal(answer)
            else:
                os.write(leader, answer.encode())
            answered = True
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # never leave it holding its transaction (the next TRUNCATE would wait)
            proc.kill()
            proc.wait()
        os.close(leader)
    assert answered, seen
    return proc.returncode, seen + out


def test_a_terminal_is_asked_and_no_sends_nothing(clean_engine, sim, hosts):
    code, text = on_a_terminal(PAYMENT, hosts, "n\n")
    assert code == 1 and "not sent" in text and "settleCost" in text
    assert sent(sim) == 0 and tracked(clean_engine) == 0
    for stop in (signal.SIGINT, signal.SIGTERM):
        code, text = on_a_terminal(PAYMENT, hosts, stop)
        assert code == 130 and "interrupted" in text and "Traceback" not in text, text
    assert sent(sim) == 0 and tracked(clean_engine) == 0
    code, text = on_a_terminal(REFUND, hosts, "y\n")
    assert code == 0 and "refund code" in text and "refundable balance now" in text
    assert sent(sim) == 1 and tracked(clean_engine) == 1


BAD_INPUT = [
    ("--amount", "0"), ("--amount", "-1"), ("--amount", "10.5"), ("--amount", "1e30"), ("--amount", "1000000000000"),
    ("--amount", "NaN"), ("--email", "notanemail"), ("--email", "a@b"), ("--hp", "abc"), ("--hp", "010"),
    ("--depositor", " "), ("--name", ""),
]  # fmt: skip


def _with(args: list[str], option: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(option) + 1] = value
    return args


def test_money_like_money_one_line_dry_run_or_not(clean_engine, sim, hosts):
    """Every bad value of the matrix, checked and sent alike: one line naming the field, exit 2,
    nothing sent or recorded. (One test for the matrix: the fixtures are the cost.)"""
    named = {"--amount": "--amount", "--email": "settlerEmail", "--hp": "notifyHP", "--depositor": "paymentName",
             "--name": "settlerName"}  # fmt: skip
    for option, value in BAD_INPUT:
        for mode in ("--dry-run", "--yes"):
            result = run(*_with(PAYMENT, option, value), mode, env=hosts)
            assert result.exit_code == 2, (option, value, mode, result.output)
            [line] = [t for t in result.stderr.splitlines() if t.startswith("Error:")]
            assert named[option] in line and "Traceback" not in result.output, line
            assert "dry run" not in result.stdout
    assert sent(sim) == 0 and tracked(clean_engine) == 0


def test_refund_points_like_money(clean_engine, sim, hosts):
    for value in ("0", "10.5", "10000001"):
        result = run(*_with(REFUND, "--points", value), "--dry-run", env=hosts)
        assert result.exit_code == 2 and "--points: must be a whole number of won" in result.stderr, result.output
    assert sent(sim) == 0 and tracked(clean_engine) == 0


def test_the_same_request_again_is_refused_naming_the_first_and_sent_with_force(clean_engine, sim, hosts):
    assert run(*PAYMENT, "--yes", env=hosts).exit_code == 0
    again = run(*PAYMENT, "--yes", env=hosts)
    assert again.exit_code == 2, again.output
    assert re.search(r"an identical PaymentRequest for 1234567890 \(110,000 won, '\(주\)팝빌'\), item \d+, sent at "
                     r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST, was registered as \d{18} and is pending", again.stderr)  # fmt: skip
    assert "--force" in again.stderr and "unknown" not in again.stderr
    dry = run(*PAYMENT, "--dry-run", env=hosts)  # the dry run runs the same check
    assert dry.exit_code == 2 and "an identical PaymentRequest" in dry.stderr
    other_email = run(*_with(PAYMENT, "--email", "other@example.kr"), "--yes", env=hosts)
    assert other_email.exit_code == 2  # the same member, amount and depositor: the same deposit
    assert sent(sim) == 1 and tracked(clean_engine) == 1
    forced = run(*PAYMENT, "--yes", "--force", env=hosts)
    assert forced.exit_code == 0, forced.output
    assert sent(sim) == 2 and tracked(clean_engine) == 2
    other_amount = run(*_with(PAYMENT, "--amount", "110001"), "--yes", env=hosts)
    assert other_amount.exit_code == 0 and sent(sim) == 3


def test_two_shells_racing_send_one_request(clean_engine, sim, hosts):
    env = subprocess_env(**hosts)
    shells = [subprocess.Popen([sys.executable, "-m", "ledger", *PAYMENT, "--yes"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]  # fmt: skip
    outputs = [shell.communicate(timeout=120) for shell in shells]
    codes = sorted(shell.returncode for shell in shells)
    assert codes == [0, 2], outputs
    refused = next(err for (_, err), shell in zip(outputs, shells, strict=True) if shell.returncode == 2)
    assert "an identical PaymentRequest" in refused
    assert sent(sim) == 1 and tracked(clean_engine) == 1


def test_a_refusal_answered_with_http_200_keeps_popbills_message(clean_engine, sim, hosts):
    sim.inject("answer", path="/Payment", method="POST", count=1, status=200,
               body='{"code":-14000004,"message":"입금자명이 올바르지 않습니다."}')  # fmt: skip
    result = run(*PAYMENT, "--yes", env=hosts)
    assert result.exit_code == 1, result.output
    assert "입금자명이 올바르지 않습니다." in result.stderr and "KeyError" not in result.output
    with clean_engine.connect() as conn:
        assert conn.execute(sql_select(TrackedItem.state)).scalar() == "refused"


def test_an_answer_outside_the_documented_shape_is_an_unknown_outcome_exit_4(clean_engine, sim, hosts):
    """Processed, then answered with garbage: it may have been registered. Never exit 2."""
    sim.inject("rewrite", path="/Payment", method="POST", count=1, edits={"settleCode": None})
    result = run(*PAYMENT, "--yes", env=hosts)
    assert result.exit_code == 4, result.output
    assert "MAY HAVE BEEN REGISTERED" in result.stderr and "settleCode: missing" in result.stderr
    with clean_engine.connect() as conn:
        assert conn.execute(sql_select(TrackedItem.state)).scalar() == "unknown"
    assert sent(sim) == 1
