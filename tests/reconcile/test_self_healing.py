"""The ledger heals itself: a row that arrives upstream late, older than any lookback, is fetched
by the next reconcile + sync + reconcile cycle with no --since, and the operator is told; a
window once answered with an error body is fetched again by the next sync."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import text

from ledger.popbill import PopbillClient
from ledger.reconcile.service import reconcile
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from ledger.sync.windows import SyncOptions
from tests.conftest import add_members, client_settings, small_config
from tests.sync.helpers import assert_ledger_equals_truth, stored_raw, truth

CORP, OTHER = "1234567890", "2208112345"


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=45, usage_per_day=6, settle_after_polls=None)) as simulator:
        yield simulator


@pytest.fixture
def env(clean_engine, sim):
    settings = dataclasses.replace(client_settings(sim), sync_window_days=31)
    add_members(clean_engine, (CORP, OTHER))
    with PopbillClient(settings) as client:
        yield clean_engine, client, settings


def sync(env, sim, corp=CORP, kind="usage", **options):
    engine, client, _ = env
    return sync_member(engine, client, corp, kind, today=sim.world.today(), options=SyncOptions(**options))


def open_checks(engine, corp) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text(
            "SELECT d.check_name FROM discrepancies d JOIN members m ON m.id = d.member_id "
            "WHERE m.corp_num = :c AND d.status = 'open' ORDER BY 1"), {"c": corp}))  # fmt: skip


def withhold_a_row(sim, days_back: int) -> dt.date:
    for back in range(days_back, days_back + 10):
        day = sim.world.today() - dt.timedelta(days=back)
        try:
            sim.world.withhold_usage_row(CORP, day)
            return day
        except KeyError:
            continue  # a day without usage
    raise AssertionError("no usage near the day asked for")


def test_a_late_row_older_than_the_lookback_is_fetched_by_the_next_cycle(env, sim):
    engine, _, settings = env
    day = withhold_a_row(sim, 15)
    assert sync(env, sim).status == "succeeded"
    sim.world.release_withheld(CORP)  # the row appears upstream, dated 15 days back
    assert sync(env, sim).status == "succeeded"  # the usual lookback (3 days) does not reach it
    assert len(stored_raw(engine, CORP, "usage")) == len(truth(sim, CORP, "usage")) - 1

    [first] = [r for r in reconcile(engine, settings, corp_nums=[CORP])]
    assert "balance_chain" in first.open_by_check
    [asked] = [line for line in first.refetching if "balance_chain" in line]
    assert asked.startswith("re-fetching usage ") and "at the next sync" in asked

    assert sync(env, sim).status == "succeeded"  # no --since
    assert_ledger_equals_truth(engine, sim, [CORP], kinds=("usage",))
    [second] = reconcile(engine, settings, corp_nums=[CORP])
    assert f"repaired: 1 late row fetched for {day:%Y-%m-%d}" in second.repairs
    assert "balance_chain" not in second.open_by_check and "balance_chain" not in open_checks(engine, CORP)
    # Judged once: the next run says nothing more, and asks for nothing.
    [third] = reconcile(engine, settings, corp_nums=[CORP])
    assert not any("balance_chain" in line for line in third.repairs + third.refetching)
    with engine.connect() as conn:
        repairs = conn.execute(text("SELECT outcome, found FROM sync_repairs")).all()
    assert [r.outcome for r in repairs] == ["repaired"] and repairs[0].found == {f"{day:%Y-%m-%d}": 1}


def test_a_break_that_persists_says_what_was_fetched_and_the_work_is_bounded(env, sim):
    """A row upstream never sends: the re-fetch brings nothing, the discrepancy says so, and
    the same finding is not re-fetched more than three times, nor more windows a night than
    LEDGER_REPAIR_WINDOWS allows."""
    engine, client, settings = env
    withhold_a_row(sim, 15)  # never released
    assert sync(env, sim).status == "succeeded"
    reconcile(engine, settings, corp_nums=[CORP])
    assert sync(env, sim).status == "succeeded"
    [report] = reconcile(engine, settings, corp_nums=[CORP])
    [line] = [x for x in report.repairs if x.startswith("not repaired")]
    assert "balance_chain still found after re-fetching usage" in line and "no row the ledger lacked" in line
    with engine.connect() as conn:
        description = conn.execute(text("SELECT description FROM discrepancies WHERE check_name = 'balance_chain' "
                                        "AND status = 'open'")).scalar()  # fmt: skip
    assert "re-fetched usage" in description and "still does not add up" in description
    # The budget: one more try tonight would exceed nothing, but a member with no budget asks for none.
    none = dataclasses.replace(settings, repair_windows=0)
    assert reconcile(engine, none, corp_nums=[CORP])[0].refetching == []
    for _ in range(4):
        reconcile(engine, settings, corp_nums=[CORP])
        sync(env, sim)
    with engine.connect() as conn:
        tries = conn.execute(text("SELECT count(*) FROM sync_repairs WHERE check_name = 'balance_chain'")).scalar()
    assert tries == 3


def test_a_window_answered_with_an_error_body_is_fetched_again(env, sim):
    """The second window (of two) answers HTTP 200 with Popbill's error form: the sync fails
    with one line naming the call, the high-water mark stays before that window, the other
    member is untouched, and the next sync, with no --since, completes the ledger exactly."""
    engine, _, _ = env
    sim.inject("answer", path="/UseHistory", corp_num=CORP, skip=1, rate=1.0,
               body='{"code":-99999999,"message":"일시적인 오류입니다."}')  # fmt: skip
    two_windows = {"initial_days": 45, "window_days": 31}  # today-45 .. today-15, then today-14 .. today
    failed = sync(env, sim, **two_windows)
    other = sync(env, sim, corp=OTHER, **two_windows)
    assert failed.status == "failed" and "GetUseHistory" in failed.error and "일시적인 오류입니다." in failed.error
    assert other.status == "succeeded"
    with engine.connect() as conn:
        high_water = conn.execute(text("SELECT s.high_water FROM sync_states s JOIN members m ON m.id = s.member_id "
                                       "WHERE m.corp_num = :c AND s.kind = 'usage'"), {"c": CORP}).scalar()  # fmt: skip
    assert high_water == sim.world.today() - dt.timedelta(days=15)  # the first window's end, not past the second
    assert 0 < len(stored_raw(engine, CORP, "usage")) < len(truth(sim, CORP, "usage"))
    sim.clear_faults()
    assert sync(env, sim, **two_windows).status == "succeeded"
    assert_ledger_equals_truth(engine, sim, [CORP, OTHER], kinds=("usage",))
    [report] = reconcile(engine, env[2], corp_nums=[CORP])
    assert "balance_chain" not in report.open_by_check


def test_quarantined_rows_are_examined_again_once_the_limits_change(env, sim):
    """Rows refused for a limit (dated before LEDGER_ROW_EARLIEST_DATE) sit in quarantine; with the
    limit moved, the reconcile + sync + reconcile cycle fetches their windows again, takes them
    in, and empties the quarantine, with no --since."""
    engine, client, settings = env
    today = sim.world.today()
    strict = dataclasses.replace(settings, row_earliest_date=today - dt.timedelta(days=9))
    with PopbillClient(strict) as picky:
        result = sync_member(engine, picky, CORP, "usage", today=today, options=SyncOptions(initial_days=12))
    assert result.status == "succeeded" and result.quarantined > 0
    [first] = reconcile(engine, settings, corp_nums=[CORP])
    assert first.open_by_check["quarantined_row"] == result.quarantined
    assert any(line.startswith("re-fetching usage") and "quarantined_row" in line for line in first.refetching)
    assert sync(env, sim).status == "succeeded"  # the usual limits now; the usual lookback
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM quarantined_rows")).scalar() == 0
    [second] = reconcile(engine, settings, corp_nums=[CORP])
    assert "quarantined_row" not in second.open_by_check
    assert any(line.startswith("repaired:") for line in second.repairs)
    # Every row of those days, and no other, came in: what the initial window saw, exactly.
    since = f"{today - dt.timedelta(days=12):%Y%m%d}"
    assert len(stored_raw(engine, CORP, "usage")) == len([r for r in truth(sim, CORP, "usage") if r["txDT"] >= since])
