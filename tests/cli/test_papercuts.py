"""Every command safe and clear: each papercut once found, with the test that guards it.
Bad input exits 2 with one line naming what is wrong, and nothing is written."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from ledger.alerts.models import Alert, AlertSilence
from ledger.kst import today_kst
from ledger.members.models import Member
from ledger.members.service import MemberInput
from ledger.pending.models import TrackedItem
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.models import SyncRun
from ledger.sync.service import sync_all
from tests.cli.helpers import add_members, run
from tests.conftest import TEST_DATABASE_URL, client_settings, small_config

CORP = "1234567890"


@pytest.fixture
def member(clean_engine):
    add_members(clean_engine, MemberInput(CORP, name="팝빌 테스트상사"))
    return clean_engine


def count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def assert_usage_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.output and "code=" not in result.stderr and "-99999999" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["report", "statement", "--member", CORP, "--month", "2026-10", "--format", "csv", "--out", "{tmp}/no/such/dir/s.csv"],
        ["export", "usages", "--format", "json", "--out", "{tmp}/missing/usages.json"],
        ["export", "usages", "--format", "xlsx", "--out", "{tmp}"],
        ["report", "month", "--month", "2026-10", "--out", "{tmp}/nonexistent/dir/x.xlsx"],
        ["report", "month", "--month", "2026-10", "--out", "{tmp}"],
    ],
)
def test_out_into_a_missing_directory_is_a_usage_error(member, tmp_path, args):
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert_usage_error(result, "--out")
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        result.stderr.strip().splitlines()[-1]
    ]  # click's usage lines, then the one line saying what is wrong
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["sync"], ["sync", "--member", CORP, "--kind", "usage"], ["balances"],
                                  ["popbill", "balance", CORP]])  # fmt: skip
def test_a_shell_not_pointed_at_the_sandbox_is_told_once(member, args):
    """No `eval "$(ledger sandbox env)"`: the sandbox's credentials would go to real Popbill."""
    result = run(*args)  # no POPBILL_ variable: the defaults, the sandbox's LinkID and key, real hosts
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and 'eval "$(ledger sandbox env)"' in result.stderr, result.stderr
    assert result.stderr.startswith("Error: POPBILL_LINK_ID: is the sandbox's") and result.stdout == ""
    assert count(member, SyncRun) == 0


@pytest.mark.parametrize(("corp", "needle"), [("9999999999", "not a member"), ("12", "CorpNum: must be 10 digits")])
def test_reconcile_member_must_be_a_member(member, corp, needle):
    assert_usage_error(run("reconcile", "--member", corp), needle)


@pytest.mark.parametrize(
    ("subject", "duration", "needle"),
    [
        (CORP, "999999999w", "at most 366 days"),
        (CORP, "99999999999999999999w", "--for"),
        (CORP, "0d", "longer than zero"),
        ("9999999999", "2d", "not a member"),
        ("12", "2d", "CorpNum"),
    ],
)
def test_mute_refuses_overflow_zero_and_non_members(member, subject, duration, needle):
    assert_usage_error(run("alerts", "mute", subject, "--for", duration), needle)
    assert count(member, AlertSilence) == 0


def test_mute_of_a_member_says_until_when_in_kst(member):
    result = run("alerts", "mute", CORP, "--for", "2d")
    assert result.exit_code == 0 and result.output.endswith("KST\n") and "." not in result.output.split("until")[1]
    assert count(member, AlertSilence) == 1


@pytest.mark.parametrize("threshold", ["1e9999", "1000000000001", "-1", "NaN", "Infinity"])
def test_absurd_thresholds_are_refused(member, threshold):
    assert_usage_error(run("members", "add", "2208112345", "--threshold", threshold), "threshold")
    assert_usage_error(run("members", "update", CORP, "--threshold", threshold), "threshold")
    with member.connect() as conn:
        assert conn.execute(select(Member.corp_num, Member.low_balance_threshold)).all() == [(CORP, None)]


def test_absurd_threshold_settings_are_refused(member):
    result = run("members", "list", env={"LEDGER_ALERT_THRESHOLD": "1e9999"})
    assert result.exit_code == 2 and "LEDGER_ALERT_THRESHOLD must be at most" in result.stderr, result.output


def test_postgres_scheme_urls_are_accepted(member):
    url = make_url(TEST_DATABASE_URL).set(drivername="postgres").render_as_string(hide_password=False)
    assert url.startswith("postgres://")
    result = run("members", "list", "--json", env={"LEDGER_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert [m["corp_num"] for m in json.loads(result.stdout)] == [CORP]


def test_pending_poll_says_nothing_is_due_and_when_next(member):
    result = run("pending", "poll")
    assert result.exit_code == 0 and "nothing was due" in result.stdout and "no items pending" in result.stdout
    due = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    with member.begin() as conn:
        member_id = conn.execute(select(Member.id)).scalar_one()
        conn.execute(insert(TrackedItem).values(member_id=member_id, kind="settle", code="1" * 18, next_poll_at=due))
    result = run("pending", "poll")
    kst = due.astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert result.exit_code == 0 and f"1 item(s) pending; the next is due at {kst:%Y-%m-%d %H:%M:%S} KST" in result.stdout
    answer = json.loads(run("pending", "poll", "--json").stdout)
    assert answer["polled"] == [] and answer["pending"] == 1
    assert dt.datetime.fromisoformat(answer["next_due_at"]) == due  # ISO with its offset


def test_reconcile_without_a_balance_reading_says_the_closing_check_was_not_run(member):
    with Simulator(small_config(history_days=20)) as sim, PopbillClient(client_settings(sim)) as client:
        assert {r.status for r in sync_all(member, client, today=sim.world.today())} == {"succeeded"}
    quiet = {"LEDGER_PENDING_STUCK_AFTER": str(10 * 365 * 86400)}  # the simulator's open deposits are not stuck
    result = run("reconcile", env=quiet)
    assert result.exit_code == 0, result.output
    assert "│ yes " not in result.stdout and "partly" in result.stdout and "not run" in result.stdout
    assert "closing balance check not run for 1 member(s) (1234567890)" in result.stdout
    assert json.loads(run("reconcile", "--json", env=quiet).stdout)[0]["closing_checked"] is False
    month = run("reconcile", "--month", f"{dt.date.today():%Y-%m}", env=quiet)  # no closing check for a period
    assert "n/a" in month.stdout and "closing balance check not run" not in month.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["report", "statement", "--member", "12", "--month", "2026-10"], "CorpNum: must be 10 digits"),
        (["members", "add", "12"], "CorpNum: must be 10 digits"),
        (["track", "settle", CORP, "a/b"], "SettleCode"),
        (["sync", "--member", "12"], "CorpNum"),
    ],
)
def test_our_own_checks_show_no_internal_codes(member, args, needle):
    assert_usage_error(run(*args), needle)


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (["members", "add", "12"], {}, 2),
        (["members", "add", CORP, "--user-id", "a\r\nb"], {}, 2),
        (["members", "nonsense"], {}, 2),
        (["sync", "--jobs", "0"], {}, 2),
        (["reconcile", "--member", "9999999999"], {}, 2),
        (["members", "list"], {"LEDGER_SYNC_PER_PAGE": "many"}, 2),
        (["members", "list"], {"LEDGER_DATABASE_URL": "mysql://x@y/z"}, 2),
        (["members", "list"], {"LEDGER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}, 1),
    ],
)
def test_one_exit_code_convention(member, args, env, code):
    result = run(*args, env=env)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


def test_exit_codes_are_documented_in_help():
    text = run("--help").stdout
    for line in ("1    a failure", "2    bad input", "3    reconciliation found open discrepancies", "130  interrupted"):
        assert line in text


def table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def shown_whole(text: str, output: str) -> bool:
    """Every word of `text` is in the table (folded over lines as it may be)."""
    cells = " ".join(part.strip() for line in output.splitlines() for part in line.split("│"))
    return all(word in cells for word in text.split())


def test_closes_show_the_reopen_reason_in_80_columns_and_everything_with_wide(member):
    with Simulator(small_config(history_days=60)) as sim, PopbillClient(client_settings(sim)) as client:
        sync_all(member, client, today=sim.world.today())  # a month is closed only for members synced through it
    month = f"{(today_kst().replace(day=1) - dt.timedelta(days=1)):%Y-%m}"
    reason = "a late usage row arrived from Popbill after the accountant closed"
    closed = run("close", "--month", month, "--by", "회계팀", "--force", "--reason", "the test's own month")
    assert closed.exit_code == 0, closed.output
    assert run("reopen", "--month", month, "--reason", reason, "--by", "회계팀").exit_code == 0
    narrow = run("closes").stdout
    assert max(len(line) for line in table_lines(narrow)) <= 80, narrow
    assert CORP in narrow and "reopened" in narrow and shown_whole(reason, narrow), narrow
    wide = run("closes", "--wide").stdout
    assert "closed_by" in wide and "reopened_by" in wide and reason in wide, wide


def test_mutes_show_why_in_80_columns_and_everything_with_wide(member):
    why = "deposit promised on Friday by the member's accountant"
    assert run("alerts", "mute", CORP, "--for", "2d", "-m", why, "--by", "ops").exit_code == 0
    narrow = run("alerts", "mutes").stdout
    assert max(len(line) for line in table_lines(narrow)) <= 80, narrow
    assert CORP in narrow and shown_whole(why, narrow), narrow
    wide = run("alerts", "mutes", "--wide").stdout
    assert "created_by" in wide and "starts_at" in wide and why in wide, wide


def test_alert_summaries_get_the_room_of_the_table(member):
    summaries = {"low_balance": "balance 31796.6 is below 1000000",
                 "popbill_unreachable": "2 of 2 balance reads failed: connection refused"}  # fmt: skip
    with member.begin() as conn:
        conn.execute(insert(Alert), [{"subject": CORP, "rule": rule, "state": "firing", "summary": text,
                                      "fired_at": dt.datetime.now(dt.UTC)} for rule, text in summaries.items()])  # fmt: skip
    narrow = run("alerts", "list").stdout
    lines = table_lines(narrow)
    assert max(len(line) for line in lines) <= 80, narrow
    assert all(shown_whole(text, narrow) for text in summaries.values()), narrow
    # Each summary folds over two lines at most (it once had 7 characters a line).
    assert len([line for line in lines if line.startswith("│")]) <= 4 + 1, narrow
    assert "fired_at" in run("alerts", "list", "--wide").stdout
