"""Every argument rule: a clear error naming the parameter, and nothing sent."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.popbill import InvalidRequestError, PaymentForm, RefundForm
from tests.conftest import MEMBER

PAY = dict(
    settler_name="a", settler_email="a@example.com", notify_hp="010-1234-5678", payment_name="b", settle_cost=Decimal("1000")
)
REF = dict(
    contact_name="a",
    tel="02-123-4567",
    request_point=Decimal("10"),
    account_bank="국민",
    account_num="1",
    account_name="b",
    reason="r",
)


def pay(**changes):
    return PaymentForm(**{**PAY, **changes})


def ref(**changes):
    return RefundForm(**{**REF, **changes})


CASES = [
    ("CorpNum", lambda c: c.get_balance("123456789")),
    ("CorpNum", lambda c: c.get_balance("12345678901")),
    ("CorpNum", lambda c: c.get_balance("12345abcde")),
    ("CorpNum", lambda c: c.get_balance(None)),
    ("CorpNum", lambda c: c.get_partner_balance("")),
    ("CorpNum", lambda c: c.get_use_history("１２３４５６７８９０", "20260101", "20260102")),
    ("SDate", lambda c: c.get_use_history(MEMBER, "2026-01-01", "20260102")),
    ("SDate", lambda c: c.get_use_history(MEMBER, "20260230", "20260302")),
    ("EDate", lambda c: c.get_payment_history(MEMBER, "20260101", "20261301")),
    ("SDate", lambda c: c.get_payment_history(MEMBER, "20260201", "20260101")),
    ("Page", lambda c: c.get_use_history(MEMBER, "20260101", "20260102", page=0)),
    ("Page", lambda c: c.get_refund_history(MEMBER, page=-1)),
    ("PerPage", lambda c: c.get_use_history(MEMBER, "20260101", "20260102", per_page=1001)),
    ("PerPage", lambda c: c.get_refund_history(MEMBER, per_page=0)),
    ("Order", lambda c: c.get_use_history(MEMBER, "20260101", "20260102", order="X")),
    ("ServiceType", lambda c: c.get_unit_cost(MEMBER)),
    ("ServiceType", lambda c: c.get_unit_cost(MEMBER, service_type="이름")),
    ("ServiceType", lambda c: c.get_charge_info(MEMBER, service_type="x")),
    ("TOGO", lambda c: c.get_partner_url(MEMBER, "LOGIN")),
    ("SettleCode", lambda c: c.get_settle_result(MEMBER, "")),
    ("SettleCode", lambda c: c.get_settle_result(MEMBER, "  ")),
    ("RefundCode", lambda c: c.get_refund_info(MEMBER, None)),
    ("RefundCode", lambda c: c.get_refund_info(MEMBER, "../Point")),
    ("PaymentForm.settlerName", lambda c: c.payment_request(MEMBER, pay(settler_name=""))),
    ("PaymentForm.settlerEmail", lambda c: c.payment_request(MEMBER, pay(settler_email=None))),
    ("PaymentForm.notifyHP", lambda c: c.payment_request(MEMBER, pay(notify_hp=" "))),
    ("PaymentForm.paymentName", lambda c: c.payment_request(MEMBER, pay(payment_name=""))),
    ("PaymentForm.settleCost", lambda c: c.payment_request(MEMBER, pay(settle_cost=Decimal("0")))),
    ("PaymentForm.settleCost", lambda c: c.payment_request(MEMBER, pay(settle_cost="-5"))),
    ("PaymentForm.settleCost", lambda c: c.payment_request(MEMBER, pay(settle_cost=10.5))),
    ("PaymentForm.settleCost", lambda c: c.payment_request(MEMBER, pay(settle_cost="abc"))),
    ("PaymentForm", lambda c: c.payment_request(MEMBER, {"settleCost": 1})),
    # Money like money: whole won, within LEDGER_MONEY_MAX_WON; addresses Popbill can use.
    *[("PaymentForm.settleCost", lambda c, v=v: c.payment_request(MEMBER, pay(settle_cost=v)))
      for v in ("10.5", Decimal("10.5"), "1e30", Decimal("1E+30"), 10**12, "10000001", "NaN", "Infinity", True)],
    *[("PaymentForm.settlerEmail", lambda c, v=v: c.payment_request(MEMBER, pay(settler_email=v)))
      for v in ("notanemail", "a@b", "a b@c.kr", "a@@b.kr", "a@b..kr")],
    *[("PaymentForm.notifyHP", lambda c, v=v: c.payment_request(MEMBER, pay(notify_hp=v)))
      for v in ("abc", "010", "02-123-4567", "010-1234-567a", "+82 10 1234 5678")],
    ("PaymentForm.settlerName", lambda c: c.payment_request(MEMBER, pay(settler_name="x" * 101))),
    ("PaymentForm.paymentName", lambda c: c.payment_request(MEMBER, pay(payment_name="a\nb"))),
    *[("RefundForm.tel", lambda c, v=v: c.refund(MEMBER, ref(tel=v))) for v in ("02", "phone", "1234-5678")],
    ("RefundForm.requestPoint", lambda c: c.refund(MEMBER, ref(request_point=Decimal("0.5")))),
    ("RefundForm.requestPoint", lambda c: c.refund(MEMBER, ref(request_point=Decimal("10000001")))),
    ("RefundForm.contactName", lambda c: c.refund(MEMBER, ref(contact_name=""))),
    ("RefundForm.tel", lambda c: c.refund(MEMBER, ref(tel=""))),
    ("RefundForm.accountBank", lambda c: c.refund(MEMBER, ref(account_bank=""))),
    ("RefundForm.accountBank", lambda c: c.refund(MEMBER, ref(account_bank="004"))),
    ("RefundForm.accountNum", lambda c: c.refund(MEMBER, ref(account_num=""))),
    ("RefundForm.accountName", lambda c: c.refund(MEMBER, ref(account_name=""))),
    ("RefundForm.reason", lambda c: c.refund(MEMBER, ref(reason=""))),
    ("RefundForm.requestPoint", lambda c: c.refund(MEMBER, ref(request_point=Decimal("-1")))),
    ("RefundForm.requestPoint", lambda c: c.refund(MEMBER, ref(request_point="NaN"))),
    ("UserID", lambda c: c.get_charge_url(MEMBER, "u" * 51)),
]


@pytest.mark.parametrize(("parameter", "call"), CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(CASES)])
def test_invalid_argument_is_refused_before_sending(client, simulator, parameter, call):
    with pytest.raises(InvalidRequestError) as caught:
        call(client)
    assert caught.value.parameter == parameter
    assert parameter in str(caught.value)
    assert caught.value.code == -99999999
    assert simulator.requests() == []


def test_check_digit_is_not_enforced(client, simulator):
    # 1234567890 fails the business-number check digit, yet it is Popbill's own test number.
    assert client.get_balance("1234567890") == simulator.world.balance("1234567890")


def test_dates_accept_date_objects(client, simulator):
    import datetime as dt

    today = simulator.world.today()
    page = client.get_use_history(MEMBER, today - dt.timedelta(days=3), today)
    assert page.total >= 0
