"""`ledger payment request` and `ledger refund request` show what will be sent, ask on a
terminal, need --yes from a script, and --dry-run sends nothing."""

from __future__ import annotations

import os
import pty
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
