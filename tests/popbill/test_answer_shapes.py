"""The calls the hostile matrix does not drive through the ledger (the popup URLs, unit cost,
charge info, the two requests) judged by the same one check per call: an answer outside the
documented shape is a MalformedAnswerError naming the call and the field, Popbill's error form
with HTTP 200 is a BusinessError keeping its message, and the good answer still reads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.popbill import BusinessError, MalformedAnswerError, PaymentForm, RefundForm
from tests.conftest import MEMBER

FORM = PaymentForm("담당자", "a@example.com", "010-1111-2222", "입금자", Decimal("22000"))
REFUND = RefundForm("담당자", "02-000-0000", Decimal("100"), "국민", "123456", "홍길동", "테스트")

CALLS = {
    "GetChargeURL": ("/Member", "GET", "url", lambda c: c.get_charge_url(MEMBER)),
    "GetPaymentURL": ("/Member", "GET", "url", lambda c: c.get_payment_url(MEMBER)),
    "GetUseHistoryURL": ("/Member", "GET", "url", lambda c: c.get_use_history_url(MEMBER)),
    "GetPartnerURL": ("/POPBILL_TEST/URL", "GET", "url", lambda c: c.get_partner_url(MEMBER)),
    "GetUnitCost": ("/EasyFin/AccountCheck/UnitCost", "GET", "unitCost", lambda c: c.get_unit_cost(MEMBER, service_type="성명")),
    "GetChargeInfo": ("/EasyFin/AccountCheck/ChargeInfo", "GET", "unitCost", lambda c: c.get_charge_info(MEMBER)),
    "PaymentRequest": ("/Payment", "POST", "settleCode", lambda c: c.payment_request(MEMBER, FORM)),
    "Refund": ("/Refund", "POST", "refundCode", lambda c: c.refund(MEMBER, REFUND)),
}  # fmt: skip
BAD = {"missing": None, "null": "null", "number_for_text": "12", "nan": "NaN", "list": "[1]", "object": '{"a": 1}'}
URL_BAD = {**BAD, "not_a_url": '"javascript:alert(1)"', "spaces": '"https://x y"'}
NUMBER_BAD = {**BAD, "negative": "-25", "huge": "1e400", "text": '"abc"'}
CODE_BAD = {**BAD, "empty": '""', "path": '"../Point"', "too_long": '"' + "1" * 41 + '"'}
SETS = {"url": URL_BAD, "unitCost": NUMBER_BAD, "settleCode": CODE_BAD, "refundCode": CODE_BAD}
CASES = [
    pytest.param(call, name, value, id=f"{call}-{name}")
    for call, (_, _, field, _) in CALLS.items()
    for name, value in SETS[field].items()
    if not (field == "unitCost" and name == "number_for_text")  # a number is what unitCost is
    and not (field in ("settleCode", "refundCode") and name == "number_for_text")  # a numeric code is a code
]


@pytest.mark.parametrize(("call", "name", "value"), CASES)
def test_a_field_outside_its_shape_is_named(client, simulator, call, name, value):
    path, method, field, ask = CALLS[call]
    simulator.inject("rewrite", path=path, method=method, rate=1.0, edits={field: value})
    with pytest.raises(MalformedAnswerError) as caught:
        ask(client)
    # Without its one field, a one-field answer is {}: named as such.
    named = "answer" if name == "missing" and call in ONE_FIELD else field
    assert caught.value.call == call and caught.value.field == named, caught.value
    assert f"{call} answered outside the documented shape: {named}: " in str(caught.value)


ONE_FIELD = {"GetChargeURL", "GetPaymentURL", "GetUseHistoryURL", "GetPartnerURL", "GetUnitCost"}


@pytest.mark.parametrize("call", list(CALLS))
def test_the_error_form_with_http_200_is_popbills_refusal_and_the_good_answer_reads(client, simulator, call):
    path, method, _, ask = CALLS[call]
    simulator.inject("answer", path=path, method=method, count=1, status=200,
                     body='{"code":-14000004,"message":"요청 값이 올바르지 않습니다."}')  # fmt: skip
    with pytest.raises(BusinessError) as caught:
        ask(client)
    assert (caught.value.code, caught.value.status, caught.value.message) == (-14000004, 200, "요청 값이 올바르지 않습니다.")
    assert ask(client) is not None  # unfaulted: read as before
