"""The ledger commands as a user runs them: clear errors, non-zero exits, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.members.models import Member
from ledger.members.service import MemberInput, add_member
from ledger.simulator import Simulator
from tests.cli.helpers import run
from tests.conftest import create_database, drop_database, small_config, unique_name
from tests.sync.helpers import assert_ledger_equals_truth


def ledger(*args, env_extra=None) -> subprocess.CompletedProcess:
    """`ledger ARGS` on the test database, none of the caller's POPBILL_/LINKHUB_/LEDGER_ settings.
    Run in this process through click's runner (the console script's own code, without a Python
    start-up per command); tests/cli/test_lazy_root.py, the demo and the First hour run real
    processes."""
    result = run(*args, env=env_extra)
    return subprocess.CompletedProcess(["ledger", *args], result.exit_code, result.stdout, result.stderr)


def members_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Member)).scalar()


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=30)) as simulator:
        yield simulator


def test_help_everywhere():
    for args in (["--help"], ["members", "--help"], ["members", "import", "--help"], ["sync", "--help"],
                 ["status", "--help"], ["db", "upgrade", "--help"], ["demo", "--help"]):  # fmt: skip
        result = ledger(*args)
        assert result.returncode == 0 and "Usage" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["members", "add", "12345"], "CorpNum"),
        (["members", "add", "1234567890", "--threshold", "many"], "threshold"),
        (["members", "deactivate", "9999999999"], "not a member"),
        (["members", "import", "/nonexistent.csv"], "nonexistent.csv"),
        (["sync", "--kind", "bogus"], "--kind"),
        (["sync", "--since", "2026-13-01"], "--since"),
        (["sync", "--member", "12"], "CorpNum"),
        (["sync", "--member", "9999999999"], "not a member"),
    ],
)
def test_bad_input_is_a_clear_error(clean_engine, args, needle):
    # A Popbill of its own (nothing listens there: the input is refused before any call).
    local = {"POPBILL_API_URL": "http://127.0.0.1:9", "LINKHUB_AUTH_URL": "http://127.0.0.1:9"}
    result = run(*args, env=local)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and "Traceback" not in result.output
    assert members_count(clean_engine) == 0


def test_bad_csv_line_is_named_and_nothing_written(clean_engine, tmp_path):
    path = tmp_path / "members.csv"
    path.write_text("corp_num,name\n1234567890,a\n2208112345,b\n99,c\n", encoding="utf-8")
    result = ledger("members", "import", str(path))
    assert result.returncode != 0 and "line 4" in result.stderr
    assert members_count(clean_engine) == 0


def test_members_sync_and_status(clean_engine, sim, tmp_path):
    path = tmp_path / "members.csv"
    path.write_text("corp_num,name,threshold\n1234567890,가,1000\n2208112345,나,\n", encoding="utf-8")
    assert ledger("members", "import", str(path)).returncode == 0
    assert ledger("members", "add", "101-82-12345", "--name", "다").returncode == 0
    assert ledger("members", "deactivate", "1018212345").returncode == 0
    listed = json.loads(ledger("members", "list", "--json").stdout)
    assert [(m["corp_num"], m["active"]) for m in listed] == [
        ("1018212345", False),
        ("1234567890", True),
        ("2208112345", True),
    ]
    hosts = {"POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url}
    result = ledger("sync", "--json", env_extra=hosts)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {(r["corp_num"], r["status"]) for r in rows} == {("1234567890", "succeeded"), ("2208112345", "succeeded")}
    assert_ledger_equals_truth(clean_engine, sim, ["1234567890", "2208112345"])
    status = json.loads(ledger("status", "--json").stdout)
    usage = {s["corp_num"]: s for s in status if s["kind"] == "usage"}
    assert usage["1234567890"]["rows_held"] == len(sim.world.usage_truth("1234567890"))
    assert usage["1234567890"]["last_status"] == "succeeded" and usage["1018212345"]["last_status"] is None
    table = ledger("status")
    assert table.returncode == 0 and "1234567890" in table.stdout


def test_failed_sync_exits_non_zero_and_is_in_status(clean_engine, sim):
    assert ledger("members", "add", "1234567890").returncode == 0
    sim.world.close_member("1234567890")
    hosts = {"POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url}
    result = ledger("sync", "--kind", "usage", env_extra=hosts)
    assert result.returncode != 0 and "failed" in result.stderr
    status = json.loads(ledger("status", "--json").stdout)
    usage = next(s for s in status if s["kind"] == "usage")
    assert usage["last_status"] == "failed" and usage["failures_7d"] == 1 and "AuthError" in usage["last_error"]


def test_unmigrated_database_says_to_upgrade(engine):
    name = unique_name("empty")
    empty = create_database(name)
    try:
        result = ledger("members", "list", env_extra={"LEDGER_DATABASE_URL": empty})
        assert result.returncode != 0 and "ledger db upgrade" in result.stderr
        assert ledger("db", "upgrade", env_extra={"LEDGER_DATABASE_URL": empty}).returncode == 0
        assert ledger("members", "list", env_extra={"LEDGER_DATABASE_URL": empty}).returncode == 0
    finally:
        drop_database(name)


def test_unreachable_database_is_a_clear_error():
    result = ledger("members", "list", env_extra={"LEDGER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    assert result.returncode != 0 and "cannot use the database" in result.stderr and "Traceback" not in result.stderr


def test_demo_runs_with_no_configuration_the_same_world_each_time(tmp_path):
    """The README's main job: embedded PostgreSQL, simulator, members, sync, a query. Run again
    with the same options it shows the same world; with others, a fresh one, never a mix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    env["LEDGER_HOME"] = str(tmp_path / "home")

    def demo(*options: str) -> str:
        result = subprocess.run([sys.executable, "-m", "ledger", "demo", *options], capture_output=True, text=True,
                                env=env, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert "does not equal closing" not in result.stderr, result.stderr
        assert result.stdout.count("succeeded") == 15
        assert "reconciliation" in result.stdout and result.stdout.count("│ yes ") == 5  # all five reconciled
        return result.stdout

    def world(output: str) -> list[str]:  # what the ledger shows, without the port and the speed
        return [line for line in output.splitlines() if "listening on" not in line and " rows/s)" not in line]

    first = demo("--days", "12", "--usage-per-day", "10")
    assert "sync summary" in first and "usage this month" in first
    assert "statement 1234567890" in first and "Closing balance" in first
    assert (tmp_path / "home" / "demo" / "pgdata").is_dir()
    assert world(demo("--days", "12", "--usage-per-day", "10")) == world(first)
    longer = demo("--days", "20", "--usage-per-day", "10")  # more history: a fresh, consistent demo
    assert world(longer) != world(first)


def test_demo_never_mixes_into_a_configured_ledger_holding_its_members(clean_engine):
    with Session(clean_engine) as session:
        add_member(session, MemberInput("2208112345", name="한빛전자 주식회사"))
        session.commit()
    result = run("demo", "--use-configured-database", "--days", "5")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("Error: --use-configured-database: LEDGER_DATABASE_URL")
    assert "2208112345" in result.stderr and "listening" not in result.stdout  # refused before anything ran
    assert members_count(clean_engine) == 1


def test_members_import_cp949_and_update(clean_engine, tmp_path):
    path = tmp_path / "회원.csv"
    path.write_bytes("사업자번호,상호\n1234567890,가나다\n".encode("cp949"))
    result = ledger("members", "import", str(path))
    assert result.returncode == 0 and "read as cp949" in result.stdout, result.stderr
    path.write_bytes("사업자번호,상호\n1234567890,라마바\n".encode("cp949"))
    result = ledger("members", "import", str(path))
    assert result.returncode != 0 and "line 2" in result.stderr and "--update" in result.stderr
    result = ledger("members", "import", str(path), "--update")
    assert result.returncode == 0 and "updated 1" in result.stdout, result.stderr
    listed = json.loads(ledger("members", "list", "--json").stdout)
    assert [m["name"] for m in listed] == ["라마바"]
