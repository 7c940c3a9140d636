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
