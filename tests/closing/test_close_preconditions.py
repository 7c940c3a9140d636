"""`ledger close` refuses a month it knows is wrong, naming each member and why: open
discrepancies touching the month, a sync that never covered the whole month, a statement
that does not add up, a member never synced. `--force --reason` closes anyway (never a member
never synced) and keeps the reason, with what it overrode, in the audit trail."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from sqlalchemy import text

from ledger.closing.service import CloseRefused, close_month, list_closes, reopen_month, touches
from ledger.kst import KST
from ledger.popbill import PopbillClient
from ledger.reconcile.service import reconcile
from ledger.simulator import Simulator
from ledger.sync.service import sync_all
from tests.conftest import add_members, client_settings, small_config
from tests.reports.test_reports import ledger_cli

CLEAN, BROKEN, NEVER, PARTIAL = "1234567890", "2208112345", "1018212345", "3148154321"
OCTOBER = dt.date(2026, 10, 1)
START = dt.datetime(2026, 10, 31, 15, 0, tzinfo=KST)


@pytest.fixture
def ledger(committed):
    """CLEAN synced through October; BROKEN missing an October row (reconciled: a balance_chain
    discrepancy, and October does not add up); NEVER added, never synced; PARTIAL synced only
    to October 20."""
    with Simulator(small_config(start=START, history_days=40, usage_per_day=4, settle_after_polls=None)) as sim:
        settings = dataclasses.replace(client_settings(sim), reconcile_max_sync_age=10**8)
        add_members(committed, {corp: f"상사 {corp[-4:]}" for corp in (CLEAN, BROKEN, NEVER, PARTIAL)})
        rows = sim.world.usage_truth(BROKEN)
        sim.world.drop_usage_row(BROKEN, next(i for i, r in enumerate(rows) if r["txDT"].startswith("20261015")))
        sim.world.advance_days(1)  # November 1: October is whole
        with PopbillClient(settings) as client:
            assert all(r.status == "succeeded" for r in sync_all(committed, client, corp_nums=[PARTIAL],
                                                                 today=dt.date(2026, 10, 20)))  # fmt: skip
            assert all(r.status == "succeeded" for r in sync_all(committed, client, corp_nums=[CLEAN, BROKEN],
                                                                 today=sim.world.today()))  # fmt: skip
        reconcile(committed, settings, corp_nums=[CLEAN, BROKEN])
        yield committed, sim.world.today()


def test_close_refuses_naming_each_member_and_why_then_force_keeps_the_reason(ledger):
    engine, today = ledger
    with pytest.raises(CloseRefused) as refused:
        close_month(engine, OCTOBER, "회계팀", today=today)
    reasons = {r.corp_num: " / ".join(r.reasons) for r in refused.value.refusals}
    assert set(reasons) == {BROKEN, NEVER, PARTIAL}  # CLEAN passes every check
    assert "balance_chain" in reasons[BROKEN] and "does not add up" in reasons[BROKEN]
    assert reasons[NEVER] == "never synced"
    assert "usage not synced past 2026-10-20" in reasons[PARTIAL] and "payments" in reasons[PARTIAL]
    assert list_closes(engine) == []  # all or nothing: CLEAN was not closed either
    assert close_month(engine, OCTOBER, "회계팀", corp_nums=[CLEAN], today=today).closed == [CLEAN]

    result = close_month(engine, OCTOBER, "회계팀", corp_nums=[BROKEN, NEVER, PARTIAL], today=today,
                         force_reason="auditor accepted the October gap")  # fmt: skip
    assert result.closed == [BROKEN, PARTIAL] and [r.corp_num for r in result.left_out] == [NEVER]
    audit = {r["corp_num"]: r["forced_reason"] for r in list_closes(engine, OCTOBER)}
    assert audit[CLEAN] is None and NEVER not in audit
    assert audit[BROKEN].startswith("auditor accepted the October gap (over: ") and "balance_chain" in audit[BROKEN]
    assert "not synced past 2026-10-20" in audit[PARTIAL]
    with pytest.raises(CloseRefused, match="never synced"):  # force never freezes a member never synced
        close_month(engine, OCTOBER, "회계팀", corp_nums=[NEVER], today=today, force_reason="x")
    # reopen and close keep working
    assert reopen_month(engine, OCTOBER, "회계팀", "recheck", corp_nums=[CLEAN]) == [CLEAN]
    assert close_month(engine, OCTOBER, "회계팀", corp_nums=[CLEAN], today=today).closed == [CLEAN]


def test_close_command_refuses_in_one_line_and_lists_every_member_in_json(ledger):
    engine, _ = ledger
    with engine.begin() as conn:  # the command judges by today; keep PARTIAL's gap as it is
        conn.execute(text("UPDATE members SET active = false WHERE corp_num = :c"), {"c": NEVER})
    result = ledger_cli("close", "--month", "2026-10")
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert BROKEN in line and PARTIAL in line and CLEAN not in line and "--force --reason" in line
    result = ledger_cli("close", "--month", "2026-10", "--json")
    refused = json.loads(result.stdout)["refused"]
    assert result.returncode == 2 and {r["corp_num"] for r in refused} == {BROKEN, PARTIAL}
    for args, needle in [(["--force"], "--reason"), (["--reason", "why"], "--reason goes with --force")]:
        result = ledger_cli("close", "--month", "2026-10", *args)
        assert result.returncode == 2 and needle in result.stderr, result.stderr
    result = ledger_cli("close", "--month", "2026-10", "--force", "--reason", "결산 일정")
    assert result.returncode == 0, result.stderr
    assert "closed 2026-10 for 3 member(s)" in result.stdout and "forced over failed checks for 2" in result.stdout
    closes = ledger_cli("closes", "--month", "2026-10", "--json")
    assert sum(1 for r in json.loads(closes.stdout) if (r["forced_reason"] or "").startswith("결산 일정")) == 2


@pytest.mark.parametrize(
    "check, period, evidence, touched",
    [
        ("balance_chain", "all", {"previous": {"tx_dt": "2026-09-30 23:59:59"}, "row": {"tx_dt": "2026-10-01 00:00:01"}}, True),
        ("balance_chain", "all", {"row": {"tx_dt": "2026-11-02 10:00:00"}}, False),
        ("deposit_without_credit", "2026-10", {}, True),
        ("pending_aging", "2026-10-15", {}, True),
        ("credit_without_deposit", "2026-09", {"tx_dt": "2026-10-01 00:00:00"}, False),
        ("quarantined_row", "all", {"reason": "txDT is not a date"}, True),  # undated: may be any month
    ],
)  # fmt: skip
def test_which_discrepancies_touch_a_month(check, period, evidence, touched):
    assert touches(check, period, evidence, OCTOBER) is touched
