"""Identity keys and the COPY path, on their own, in a rolled-back transaction."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select

from ledger.history import identity
from ledger.history.models import Usage
from ledger.history.writer import prepare_usage_copy, write_usage_copy
from ledger.members.service import MemberInput, add_member

ROW = {"itemCode": 121, "txType": 2, "txPoint": "10", "balance": "990.5", "txDT": "20261120150000",
       "serviceUserID": "", "userID": "user01", "userName": "김하나"}  # fmt: skip


def test_key_ignores_number_spelling_but_not_content():
    same = identity.row_key({**ROW, "txPoint": "10.0", "itemCode": "121"}, identity.USAGE_KEY)
    assert same == identity.row_key(ROW, identity.USAGE_KEY)
    assert identity.row_key({**ROW, "balance": "990.6"}, identity.USAGE_KEY) != same
    assert identity.row_key({**ROW, "userName": None}, identity.USAGE_KEY) != identity.row_key(
        {**ROW, "userName": ""}, identity.USAGE_KEY
    )


def test_mutable_fields_are_not_part_of_a_payment_key():
    payment = {"regDT": "20261120150000", "settleCost": "11000", "settlePoint": "11000", "settlerName": "a",
               "settleState": 1, "stateDT": "20261120150000"}  # fmt: skip
    done = {**payment, "settleState": 2, "stateDT": "20261121090000"}
    assert identity.row_key(payment, identity.PAYMENT_KEY) == identity.row_key(done, identity.PAYMENT_KEY)


def test_occurrences_count_exact_repeats():
    counter = identity.OccurrenceCounter()
    assert [counter.next(k) for k in ("a", "b", "a", "a", "b")] == [0, 0, 1, 2, 1]


def test_copy_round_trips_awkward_text(db):
    member = add_member(db, MemberInput("1234567890"))
    awkward = {**ROW, "userName": 'tab\there\nnew\\line "quoted" \u200b끝', "serviceUserID": "\\N"}
    rows = (ROW, awkward, dict(ROW))  # the third repeats the first
    conn = db.connection()
    payload = prepare_usage_copy(member.id, rows, identity.OccurrenceCounter())
    counts = write_usage_copy(conn, payload, dt.datetime.now(dt.UTC), likely_new=True)
    assert counts.inserted == 3
    stored = db.execute(select(Usage).order_by(Usage.id)).scalars().all()
    assert [u.occurrence for u in stored] == [0, 0, 1]
    assert stored[1].user_name == awkward["userName"] and stored[1].service_user_id == "\\N"
    assert stored[1].raw == awkward and stored[1].balance == Decimal("990.5")
    assert stored[0].tx_dt == dt.datetime(2026, 11, 20, 6, 0, tzinfo=dt.UTC)
    again = write_usage_copy(conn, prepare_usage_copy(member.id, rows, identity.OccurrenceCounter()),
                             dt.datetime.now(dt.UTC), likely_new=True)  # fmt: skip
    assert (again.inserted, again.unchanged) == (0, 3)  # the fast path fell back to the merge


TIED = {"regDT": "20261120150000", "productType": "포인트 충전", "productName": "포인트", "settleType": "무통장",
        "settlerName": "홍길동", "settlerEmail": "a@example.com", "settleCost": "11000", "settlePoint": "10000"}  # fmt: skip
PENDING = {**TIED, "settleState": 1, "stateDT": "20261120150000"}
CANCELLED = {**TIED, "settleState": 3, "stateDT": "20261121090000"}
DONE = {**TIED, "settleState": 2, "stateDT": "20261121100000"}


def _write_payments(conn, member_id, pages):
    """One fetch of the payment history, page by page, as the sync writes it."""
    from ledger.history.writer import PAYMENTS, WriteCounts, write_mutable_page
    from ledger.popbill.models import PaymentHistory

    counter, total = identity.OccurrenceCounter(), WriteCounts()
    for rows in pages:
        typed = tuple(PaymentHistory.from_wire(dict(r)) for r in rows)
        total += write_mutable_page(conn, PAYMENTS, member_id, typed, counter, dt.datetime.now(dt.UTC))
    return total


def test_tied_payments_keep_their_states_whatever_order_upstream_lists_them(db):
    """Two payments alike in every immutable field (one key) but for their state: however they
    are listed (either order, on one page or straddling two), nothing changes and no state
    change is recorded; a real change is recorded once, on the row that changed."""
    from ledger.history.models import Payment, StateChange

    member = add_member(db, MemberInput("1234567890"))
    conn = db.connection()
    first = _write_payments(conn, member.id, [[PENDING, CANCELLED]])
    assert first.inserted == 2
    for pages in ([[CANCELLED, PENDING]], [[PENDING], [CANCELLED]], [[CANCELLED], [PENDING]], [[PENDING, CANCELLED]]):
        counts = _write_payments(conn, member.id, pages)
        assert (counts.inserted, counts.updated, counts.unchanged) == (0, 0, 2), pages
    assert db.execute(select(StateChange)).scalars().all() == []
    moved = _write_payments(conn, member.id, [[CANCELLED], [DONE]])  # the pending one settled
    assert (moved.updated, moved.unchanged) == (1, 1)
    changes = db.execute(select(StateChange.field, StateChange.old_value, StateChange.new_value)).all()
    assert [c.field for c in sorted(changes)] == ["settle_state", "state_dt"]
    assert sorted(changes)[0] == ("settle_state", "1", "2")
    assert dt.datetime.fromisoformat(sorted(changes)[1].new_value) == dt.datetime(2026, 11, 21, 1, 0, tzinfo=dt.UTC)
    states = sorted(db.execute(select(Payment.settle_state).where(Payment.member_id == member.id)).scalars())
    assert states == [2, 3]


def test_tied_refunds_are_matched_by_content_too(db):
    from ledger.history.models import StateChange
    from ledger.history.writer import REFUNDS, write_mutable_page
    from ledger.popbill.models import RefundHistory

    member = add_member(db, MemberInput("1234567890"))
    conn = db.connection()
    base = {"reqDT": "20261120120000", "requestPoint": "5000", "accountBank": "국민", "accountNum": "1",
            "accountName": "홍길동", "reason": "해지"}  # fmt: skip
    rows = [{**base, "state": 1}, {**base, "state": 3}, {**base, "state": 1}]
    for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0], [1, 2, 0]):
        typed = tuple(RefundHistory.from_wire(dict(rows[i])) for i in order)
        write_mutable_page(conn, REFUNDS, member.id, typed, identity.OccurrenceCounter(), dt.datetime.now(dt.UTC))
    assert db.execute(select(StateChange)).scalars().all() == []
