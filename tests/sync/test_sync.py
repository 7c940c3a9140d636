"""sync_member against the simulator and a real PostgreSQL: complete, incremental, idempotent."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from ledger.history.models import Payment, StateChange, Usage
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PaymentForm, PopbillClient, codes
from ledger.simulator import Simulator
from ledger.sync.models import SyncRun, SyncState
from ledger.sync.service import sync_all, sync_member
from ledger.sync.windows import SyncOptions
from tests.conftest import client_settings, small_config
from tests.sync.helpers import assert_ledger_equals_truth, truth

MEMBERS = ["1234567890", "2208112345", "1018212345"]
KINDS = ("usage", "payments", "refunds")


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=120, usage_per_day=30, settle_after_polls=None)) as simulator:
        yield simulator


@pytest.fixture
def popbill(sim):
    with PopbillClient(client_settings(sim)) as client:
        yield client


@pytest.fixture
def ledger_db(clean_engine):
    from sqlalchemy.orm import Session

    with Session(clean_engine) as session:
        for corp in MEMBERS:
            add_member(session, MemberInput(corp, name=f"회원 {corp[-4:]}"))
        session.commit()
    return clean_engine


def run_all(engine, client, sim, **kwargs):
    options = kwargs.pop("options", SyncOptions(window_days=31))
    results = sync_all(engine, client, today=sim.world.today(), options=options, **kwargs)
    assert all(r.status == "succeeded" for r in results), [(r.corp_num, r.kind, r.error) for r in results]
    return results


def by_kind(results, kind):
    return [r for r in results if r.kind == kind]


def test_first_sync_equals_ground_truth(ledger_db, popbill, sim):
    results = run_all(ledger_db, popbill, sim)
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)
    for r in results:
        assert r.inserted == len(truth(sim, r.corp_num, r.kind)) and r.updated == 0
    with ledger_db.connect() as conn:
        runs = conn.execute(select(SyncRun.status, func.count()).group_by(SyncRun.status)).all()
    assert runs == [("succeeded", len(MEMBERS) * 3)]


def test_typed_columns_follow_the_raw_rows(ledger_db, popbill, sim):
    run_all(ledger_db, popbill, sim)
    corp = MEMBERS[0]
    rows = truth(sim, corp, "usage")
    with ledger_db.connect() as conn:
        total = conn.execute(select(func.sum(Usage.tx_point))).scalar()
        latest = conn.execute(
            text("SELECT u.balance FROM usages u JOIN members m ON m.id = u.member_id WHERE m.corp_num = :c "
                 "ORDER BY u.tx_dt DESC, u.id DESC LIMIT 1"), {"c": corp}
        ).scalar()  # fmt: skip
        first_dt = conn.execute(
            text("SELECT min(u.tx_dt) FROM usages u JOIN members m ON m.id = u.member_id WHERE m.corp_num = :c"),
            {"c": corp},
        ).scalar()
    everyone = sum(Decimal(r["txPoint"]) for c in MEMBERS for r in truth(sim, c, "usage"))
    assert total == everyone and isinstance(total, Decimal)
    assert latest == Decimal(rows[-1]["balance"]) == sim.world.balance(corp)
    first = rows[0]["txDT"]
    assert first_dt.astimezone(dt.timezone(dt.timedelta(hours=9))).strftime("%Y%m%d%H%M%S") == first


def test_second_sync_changes_nothing_and_makes_one_call_per_window(ledger_db, popbill, sim):
    run_all(ledger_db, popbill, sim)
    again = run_all(ledger_db, popbill, sim)
    assert all(r.inserted == 0 and r.updated == 0 for r in again)
    # Lookback of 3 days fits one window and one page: one call per member and kind.
    assert [r.api_calls for r in again] == [1] * len(again)
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)


def test_new_days_are_picked_up_incrementally(ledger_db, popbill, sim):
    run_all(ledger_db, popbill, sim)
    sim.advance_days(5)
    later = run_all(ledger_db, popbill, sim)
    usage = by_kind(later, "usage")
    assert sum(r.inserted for r in usage) > 0
    assert all(r.api_calls <= 2 for r in usage)  # eight days: at most a window and a page more
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)


def test_completed_payment_is_updated_in_place_and_its_change_kept(ledger_db, popbill, sim):
    corp = MEMBERS[0]
    settle_code = popbill.payment_request(
        corp, PaymentForm("담당", "a@b.kr", "010-1234-5678", "입금자", Decimal("55000"))
    ).settle_code
    run_all(ledger_db, popbill, sim)
    before = {c: sim.world.payments_truth(c) for c in MEMBERS}
    sim.advance_days(6)  # beyond the lookback: the pending payment itself keeps it in view
    sim.complete_payment(corp, settle_code)
    later = run_all(ledger_db, popbill, sim)
    # Ours, and any generated deposit that settled in those six days: payments are append-only.
    moved = sum(old != new for c in MEMBERS for old, new in zip(before[c], sim.world.payments_truth(c), strict=False))
    assert moved >= 1 and sum(r.updated for r in by_kind(later, "payments")) == moved
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)
    with ledger_db.connect() as conn:
        changes = conn.execute(
            select(StateChange.field, StateChange.old_value, StateChange.new_value)
            .join(Payment, Payment.id == StateChange.payment_id)
            .where(Payment.settle_cost == Decimal("55000"))
            .order_by(StateChange.field)
        ).all()
    assert changes[0][0] == "settle_state"
    assert (changes[0][1], changes[0][2]) == (str(codes.SETTLE_PENDING), str(codes.SETTLE_DONE))
    assert changes[1][0] == "state_dt" and changes[1][1] != changes[1][2]


def test_refund_state_change_is_recorded(ledger_db, popbill, sim):
    from ledger.popbill import RefundForm

    corp = MEMBERS[1]
    code = popbill.refund(corp, RefundForm("담당", "02-123-4567", Decimal("100"), "국민", "1", "홍", "r")).refund_code
    run_all(ledger_db, popbill, sim)
    sim.complete_refund(corp, code)
    later = run_all(ledger_db, popbill, sim)
    assert sum(r.updated for r in by_kind(later, "refunds")) == 1
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)
    with ledger_db.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(StateChange).where(StateChange.refund_id.is_not(None))
            ).scalar()
            == 1
        )


def test_late_rows_inside_the_lookback_are_picked_up(ledger_db, popbill, sim):
    corp = MEMBERS[2]
    sim.world.hold_back(corp, 5)
    run_all(ledger_db, popbill, sim)
    held = len(truth(sim, corp, "usage"))
    sim.world.release(corp)
    later = run_all(ledger_db, popbill, sim)
    assert sum(r.inserted for r in by_kind(later, "usage") if r.corp_num == corp) == 5
    assert len(truth(sim, corp, "usage")) == held + 5
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)


def test_exact_repeats_are_kept_as_separate_rows(ledger_db, popbill, sim):
    run_all(ledger_db, popbill, sim)
    with ledger_db.connect() as conn:
        repeats = conn.execute(select(func.count()).select_from(Payment).where(Payment.occurrence > 0)).scalar()
    expected = 0
    for corp in MEMBERS:
        seen = {}
        for row in truth(sim, corp, "payments"):
            key = (row["regDT"], row["settleCost"], row["settlerName"])
            expected += 1 if key in seen else 0
            seen[key] = True
    assert repeats == expected


def test_windows_walk_the_first_sync_in_pieces(ledger_db, popbill, sim):
    results = run_all(ledger_db, popbill, sim, kinds=("usage",), options=SyncOptions(window_days=10, per_page=200))
    # 120 days of history in ten-day windows (from a year back), each at least one call.
    assert all(r.api_calls >= 37 for r in results)
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS, kinds=("usage",))
    with ledger_db.connect() as conn:
        states = conn.execute(select(SyncState.high_water).where(SyncState.kind == "usage")).scalars().all()
    assert states == [sim.world.today()] * len(MEMBERS)


def test_since_limits_the_first_sync(ledger_db, popbill, sim):
    since = sim.world.today() - dt.timedelta(days=10)
    result = sync_member(ledger_db, popbill, MEMBERS[0], "usage", today=sim.world.today(), since=since)
    expected = [r for r in truth(sim, MEMBERS[0], "usage") if r["txDT"][:8] >= f"{since:%Y%m%d}"]
    assert result.inserted == len(expected) > 0


def test_refund_sync_stops_at_a_known_page_and_does_full_passes(ledger_db, popbill, sim):
    options = SyncOptions(per_page=1)
    corp = next(c for c in MEMBERS if len(truth(sim, c, "refunds")) >= 2)
    first = sync_member(ledger_db, popbill, corp, "refunds", today=sim.world.today(), options=options)
    assert first.api_calls == len(truth(sim, corp, "refunds"))
    second = sync_member(ledger_db, popbill, corp, "refunds", today=sim.world.today(), options=options)
    assert second.api_calls == 1 and second.inserted == 0
    forced = sync_member(ledger_db, popbill, corp, "refunds", today=sim.world.today(), options=options, full=True)
    assert forced.api_calls == len(truth(sim, corp, "refunds"))


def test_one_member_failing_does_not_stop_the_others(ledger_db, popbill, sim):
    sim.world.close_member(MEMBERS[1])
    results = sync_all(ledger_db, popbill, today=sim.world.today())
    failed = [r for r in results if r.status == "failed"]
    assert {r.corp_num for r in failed} == {MEMBERS[1]} and len(failed) == 3
    assert all("AuthError" in r.error for r in failed)
    assert_ledger_equals_truth(ledger_db, sim, [MEMBERS[0], MEMBERS[2]])
    with ledger_db.connect() as conn:
        recorded = conn.execute(select(SyncRun.error).where(SyncRun.status == "failed")).scalars().all()
    assert len(recorded) == 3 and all(recorded)


def test_failed_page_commits_nothing_and_the_rerun_completes(ledger_db, sim):
    settings = client_settings(sim, retry_attempts=2)
    with PopbillClient(settings) as client:
        sim.inject("status", status=503, path="/UseHistory", skip=2, count=2)
        options = SyncOptions(per_page=500, window_days=200)
        since = sim.world.today() - dt.timedelta(days=150)  # one window, many pages
        failed = sync_member(
            ledger_db, client, MEMBERS[0], "usage", today=sim.world.today(), since=since, options=options
        )
        assert failed.status == "failed" and failed.pages == 2
        with ledger_db.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(Usage)).scalar()
            high_water = conn.execute(select(SyncState.high_water)).scalar()
        assert stored == failed.inserted == 1000 and high_water is None
        again = sync_member(
            ledger_db, client, MEMBERS[0], "usage", today=sim.world.today(), since=since, options=options
        )
        assert again.status == "succeeded"
    assert_ledger_equals_truth(ledger_db, sim, [MEMBERS[0]], kinds=("usage",))


def test_faults_on_a_share_of_calls_still_give_the_whole_ledger(ledger_db, sim):
    settings = dataclasses.replace(client_settings(sim, read_timeout=0.5), retry_attempts=10)
    with PopbillClient(settings) as client:
        for kind in ("status", "malformed_json", "drop", "truncated_gzip"):
            sim.inject(kind, path="/UseHistory", rate=0.08)
        sim.inject("stall", path="/PaymentHistory", rate=0.2, seconds=2)
        sim.inject("status", status=500, path="/RefundHistory", rate=0.3)
        run_all(ledger_db, client, sim, options=SyncOptions(per_page=300))
    assert any(r.fault for r in sim.requests())
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)


def test_pages_that_move_while_paging_are_fetched_again(ledger_db, popbill, sim):
    """A refund requested between page 1 and page 2 changes the total: the pages restart."""
    import threading

    from tests.waiting import wait_for

    corp = next(c for c in MEMBERS if len(truth(sim, c, "refunds")) >= 2)
    before = len(truth(sim, corp, "refunds"))
    sim.inject("latency", path="/RefundHistory", skip=1, count=1, seconds=0.5)  # page 2 waits

    def request_a_refund_after_page_one():
        wait_for(lambda: len(sim.requests("/RefundHistory")) >= 1, what="page 1")
        sim.world.request_refund(corp, {"requestpoint": "100", "accountbank": "국민", "accountnum": "1",
                                        "accountname": "홍", "reason": "r", "contactname": "c", "tel": "t"})  # fmt: skip

    meddler = threading.Thread(target=request_a_refund_after_page_one)
    meddler.start()
    result = sync_member(ledger_db, popbill, corp, "refunds", today=sim.world.today(), options=SyncOptions(per_page=1))
    meddler.join()
    assert result.status == "succeeded", result.error
    assert len(truth(sim, corp, "refunds")) == before + 1
    assert result.api_calls == 2 + (before + 1)  # two pages before the restart, then every page again
    assert_ledger_equals_truth(ledger_db, sim, [corp], kinds=("refunds",))
