"""Tracked deposits and refunds, polled against the simulator until they settle."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ledger.alerts.models import Alert
from ledger.alerts.service import review_stuck
from ledger.history.models import Payment, StateChange
from ledger.members.service import MemberInput, add_member
from ledger.pending import polling, sending, service
from ledger.pending.models import TrackedItem
from ledger.popbill import PaymentForm, PopbillClient, RefundForm, codes
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from tests.conftest import client_settings, small_config

CORP = "1234567890"
FORM = PaymentForm("담당자", "a@example.com", "010-0000-0000", "(주)입금", Decimal("33000"))


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=20, settle_after_polls=3, refund_after_polls=2)) as simulator:
        yield simulator


@pytest.fixture
def env(clean_engine, sim):
    settings = dataclasses.replace(client_settings(sim), pending_first_poll=0)  # due at once, for the test
    with Session(clean_engine) as session:
        add_member(session, MemberInput(CORP))
        session.commit()
    with PopbillClient(settings) as client:
        yield clean_engine, client, settings


def item_row(engine, code):
    with engine.connect() as conn:
        return conn.execute(select(TrackedItem.__table__).where(TrackedItem.code == code)).one()


def test_deposit_settles_after_polls_and_the_history_follows(env, sim):
    engine, client, settings = env
    code = sending.request_payment(engine, client, CORP, FORM).code
    sync_member(engine, client, CORP, "payments", today=sim.world.today())
    states = []
    for _ in range(3):
        outcomes = service.poll_due(engine, client, settings)
        states.append([o.state for o in outcomes if o.code == code])
    assert states == [["pending"], ["pending"], ["done"]]
    row = item_row(engine, code)
    assert row.poll_count == 3 and row.resolved_at is not None and row.raw_state == codes.SETTLE_DONE
    assert all(o.code != code for o in service.poll_due(engine, client, settings))  # final: never polled again
    # The poller's caller syncs the member's payments: the ledger agrees.
    sync_member(engine, client, CORP, "payments", today=sim.world.today())
    with engine.connect() as conn:
        state = conn.execute(select(Payment.settle_state).where(Payment.settle_cost == Decimal("33000"))).scalar()
        changed = conn.execute(select(StateChange.new_value).where(StateChange.field == "settle_state")).scalars().all()
    assert state == codes.SETTLE_DONE and changed == [str(codes.SETTLE_DONE)]


def test_backoff_doubles_and_is_capped(env):
    _, _, settings = env
    settings = dataclasses.replace(settings, pending_first_poll=600, pending_max_interval=6 * 3600)
    waits = [polling.next_interval(n, settings).total_seconds() for n in range(1, 8)]
    assert waits == [600, 1200, 2400, 4800, 9600, 19200, 21600]


def test_refund_settles_and_over_refund_is_refused_before_sending(env, sim):
    engine, client, settings = env
    too_much = sim.world.refundable_balance(CORP).to_integral_value() + 1
    form = RefundForm("담당", "02-123-4567", too_much, "국민", "123", "홍길동", "해지")
    with pytest.raises(service.PendingError, match="refundable"):
        sending.request_refund(engine, client, CORP, form)
    assert sim.requests("/Refund", method="POST") == []
    code = sending.request_refund(engine, client, CORP, dataclasses.replace(form, request_point=Decimal("100"))).code
    service.poll_due(engine, client, settings)
    assert [o.state for o in service.poll_due(engine, client, settings)] == ["done"]
    assert item_row(engine, code).state == "done"


def test_unknown_code_becomes_invalid_and_is_not_polled_again(env, sim):
    engine, client, settings = env
    with Session(engine) as session:
        service.track_code(session, CORP, "settle", "999999999999999999")
        session.commit()
    outcomes = service.poll_due(engine, client, settings)
    assert [o.state for o in outcomes] == ["invalid"]
    assert item_row(engine, "999999999999999999").last_answer["code"] < 0
    assert service.poll_due(engine, client, settings) == []
    assert len(sim.requests("/Payment/")) == 1


def test_tracking_twice_is_harmless_and_bad_input_is_refused(env):
    engine, _, _ = env
    with Session(engine) as session:
        first = service.track_code(session, CORP, "refund", "ABC")
        second = service.track_code(session, CORP, "refund", "ABC")
        assert first.id == second.id
        for args, field in [((CORP, "settle", ""), "SettleCode"), ((CORP, "bogus", "X"), "kind"), (("123", "settle", "X"), "CorpNum"),
                            (("9999999999", "settle", "X"), "not a member")]:  # fmt: skip
            with pytest.raises(service.PendingError, match=field):
                service.track_code(session, *args)


def test_old_pending_item_raises_the_stuck_alert_then_resolves(env, sim):
    engine, client, settings = env
    code = sending.request_payment(engine, client, CORP, FORM).code
    with engine.begin() as conn:
        conn.execute(text("UPDATE tracked_items SET requested_at = now() - interval '4 days'"))
    assert review_stuck(engine, settings) == [f"settle:{code}"]
    assert review_stuck(engine, settings) == []  # deduplicated while it fires
    sim.complete_payment(CORP, code)
    service.poll_due(engine, client, settings)
    review_stuck(engine, settings)
    with engine.connect() as conn:
        alert = conn.execute(select(Alert.state, Alert.resolved_at).where(Alert.rule == "stuck_pending")).one()
    assert alert.state == "ok" and alert.resolved_at is not None


def test_concurrent_pollers_never_poll_one_item_twice(env, sim):
    engine, client, settings = env
    settings = dataclasses.replace(settings, pending_first_poll=600)  # once polled, not due again
    codes_ = [sending.request_payment(engine, client, CORP, FORM, force=True).code for _ in range(6)]
    results: list = []
    barrier = threading.Barrier(3)

    def poll():
        barrier.wait()
        results.extend(service.poll_due(engine, client, settings, now=dt.datetime.now(dt.UTC)))

    threads = [threading.Thread(target=poll) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.code for o in results) == sorted(codes_)
    assert len(sim.requests("/Payment/")) == 6


def test_state_meanings_come_from_the_state_codes_table(env, sim):
    """Correcting one row of state_codes changes the poller and the accountants' view alike."""
    engine, client, settings = env
    code = sending.request_payment(engine, client, CORP, FORM).code
    sync_member(engine, client, CORP, "payments", today=sim.world.today())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM v_pending_items WHERE source = 'payment'")).scalar() >= 1
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE state_codes SET meaning = 'done' WHERE kind = 'settle' AND code = 1"))
        assert [o.state for o in service.poll_due(engine, client, settings) if o.code == code] == ["done"]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM v_pending_items WHERE source = 'payment'")).scalar() == 0
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE state_codes SET meaning = 'pending' WHERE kind = 'settle' AND code = 1"))


def test_doubtful_answers_keep_an_item_pending_and_past_the_limit_say_what_popbill_answered(env, sim):
    """GetSettleResult answering HTTP 200 with an error body, {} or a state nobody defined: the
    deposit stays pending (never `cancelled`), each poll counts, and at LEDGER_PENDING_DOUBT_LIMIT
    a stuck_pending alert quotes the last answer; a clear answer clears both."""
    engine, client, settings = env
    code = sending.request_payment(engine, client, CORP, FORM).code
    bodies = ['{"code":-99999999,"message":"잠시 후 다시 시도하세요."}', "{}", None]
    for n, body in enumerate(bodies, start=1):
        if body is None:
            sim.inject("rewrite", path="/Payment/", method="GET", rate=1.0, edits={"settleState": "99"})
        else:
            sim.inject("answer", path="/Payment/", method="GET", rate=1.0, status=200, body=body)
        [outcome] = [o for o in service.poll_due(engine, client, settings) if o.code == code]
        sim.clear_faults()
        assert outcome.state == "pending" and outcome.doubt, outcome
        row = item_row(engine, code)
        assert (row.state, row.doubtful_polls, row.resolved_at) == ("pending", n, None)
        fired = review_stuck(engine, settings)
        assert fired == ([f"settle:{code}"] if n == settings.pending_doubt_limit else [])
    with engine.connect() as conn:
        summary = conn.execute(select(Alert.summary).where(Alert.rule == "stuck_pending")).scalar()
    assert "the last 3 answers about it were not clear" in summary
    assert "settleState 99, which state_codes does not define" in summary
    # A clear answer: still pending, but no longer in doubt; the alert resolves.
    [outcome] = [o for o in service.poll_due(engine, client, settings) if o.code == code]
    assert (outcome.state, outcome.doubt) == ("pending", None) and item_row(engine, code).doubtful_polls == 0
    review_stuck(engine, settings)
    with engine.connect() as conn:
        assert conn.execute(select(Alert.state).where(Alert.rule == "stuck_pending")).scalar() == "ok"
