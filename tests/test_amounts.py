"""One amount rule: every wire form of an amount means the same to screening, the row key, the
stored column and the typed models; and the keys of the forms Popbill sends never change, so
ledgers already stored keep deduplicating."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal, InvalidOperation

import pytest

from ledger.amounts import (
    AmountError,
    amount_key,
    amount_text,
    parse_amount,
    plain_amount,
    wire_amount_key,
    wire_amount_text,
)
from ledger.history import identity
from ledger.history.screening import RowLimits, screen_row
from ledger.history.writer import prepare_usage_copy
from ledger.popbill.models import PaymentHistory, UseHistory, to_decimal
from ledger.settings import Settings
from tests.hostile import payment_row, usage_row

TODAY = dt.date(2026, 11, 20)
LIMITS = RowLimits.for_sync(Settings(), TODAY)

# wire value -> the amount it is
ACCEPTED = {
    "0": "0", "7": "7", "10": "10", "990.5": "990.5", "16427.40": "16427.4", "0.05": "0.05", "0.0001": "0.0001",
    "007": "7", "00.5": "0.5", "0.000": "0", "1.": "1", ".5": "0.5", "+5": "5", "-5": "-5", "-10.50": "-10.5",
    "-0": "0", "1,234": "1234", "1,234.5": "1234.5", "-1,234,567.25": "-1234567.25", " 12 ": "12", "\t12\n": "12",
    "1e3": "1000", "1E+3": "1000", "2.5E-2": "0.025", "10000000000": "10000000000",
    0: "0", 12: "12", -3: "-3", 10**30: str(10**30),
    Decimal("1.10"): "1.1", Decimal("-0.0"): "0", Decimal("1E+3"): "1000", Decimal("0.0000001"): "0.0000001",
}  # fmt: skip
NOT_AMOUNTS = [
    "1,2", "12,34", "1,2345", ",123", "1,234e3", "1 234", "1_000", "٣", "１２", "\u00a012", "12 points", "--5", "+-5",
    ".", "e5", "1e", "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "   ",
    float("nan"), float("inf"), 1.5, 0.0, True, False, [], {}, ["1"], Decimal("NaN"), Decimal("-Infinity"),
]  # fmt: skip
ABSENT = [None, ""]


@pytest.mark.parametrize("value", list(ACCEPTED), ids=repr)
def test_an_amount_parses_to_the_same_number_everywhere(value):
    number = parse_amount(value)
    assert amount_key(number) == ACCEPTED[value]
    assert Decimal(amount_key(number)) == number
    assert wire_amount_key(value) == ACCEPTED[value]
    assert wire_amount_text(value) == amount_text(number) == str(number)
    assert to_decimal(value) == number


@pytest.mark.parametrize("value", NOT_AMOUNTS, ids=repr)
def test_anything_else_is_refused_by_every_user(value):
    with pytest.raises(AmountError) as refused:
        parse_amount(value)
    assert refused.value.reason and isinstance(refused.value, ValueError)
    for use in (wire_amount_key, wire_amount_text, to_decimal):
        with pytest.raises(AmountError):
            use(value)
    reason = screen_row("usage", usage_row(1, TODAY, txPoint=value), LIMITS)
    assert reason is not None and reason.startswith("txPoint: ")
    with pytest.raises(AmountError):
        identity.row_key(usage_row(1, TODAY, balance=value), identity.USAGE_KEY)
    with pytest.raises(ValueError):
        UseHistory.from_wire(usage_row(1, TODAY, balance=value))


@pytest.mark.parametrize("value", ABSENT, ids=repr)
def test_an_absent_amount_is_none(value):
    assert parse_amount(value) is None and to_decimal(value) is None and wire_amount_text(value) is None
    assert screen_row("usage", usage_row(1, TODAY, txPoint=value), LIMITS) == "txPoint: missing"
    assert screen_row("payments", payment_row(1, TODAY, settleCost=value), LIMITS) is None


def test_the_same_amount_written_differently_keys_the_same_row():
    """The bug this rule removes: '1,234.5' passed screening and was stored as 1234.5, but keyed as '1,234.5'."""
    forms = ["1234.5", "1,234.5", "1234.50", "001234.5", " 1234.5", "1.2345E+3", Decimal("1234.50")]
    keys = {identity.row_key(usage_row(1, TODAY, balance=form), identity.USAGE_KEY) for form in forms}
    assert len(keys) == 1
    for form in forms:
        row = usage_row(1, TODAY, balance=form)
        assert screen_row("usage", row, LIMITS) is None
        line = prepare_usage_copy(7, [row], identity.OccurrenceCounter()).split("\t")
        assert Decimal(line[7]) == Decimal("1234.5") and line[1] in keys
        assert UseHistory.from_wire(row).balance == Decimal("1234.5")
    assert PaymentHistory.from_wire(payment_row(1, TODAY, settleCost="11,000")).settle_cost == Decimal(11000)


def _key_before(value) -> str:
    """identity._amount as it was before the one rule (the oracle for keys already stored)."""
    text = str(value)
    if text.replace(".", "", 1).isdigit():
        whole, _, fraction = text.partition(".")
        whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
        return f"{whole}.{fraction}" if fraction else whole
    try:
        return format(Decimal(text).normalize(), "f")
    except InvalidOperation:
        return text


def _popbill_forms(rng: random.Random) -> list:
    """What Popbill sends for an amount: decimal strings (with or without a fraction, signed for
    a txPoint), JSON integers, and JSON numbers with a fraction, decoded as Decimal."""
    forms = []
    for _ in range(4000):
        whole = rng.choice([0, rng.randrange(1, 10), rng.randrange(1, 10**6), rng.randrange(1, 10**10)])
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.choice([0, 0, 1, 2, 4])))
        text = f"{whole}.{fraction}" if fraction else str(whole)
        sign = rng.choice(["", "", "-"]) if Decimal(text) else ""  # a zero is never sent as "-0"
        forms += [sign + text, Decimal(sign + text), int(sign + str(whole))]
    return forms


def test_keys_of_what_popbill_sends_are_unchanged():
    for value in _popbill_forms(random.Random(20)) + ["", "0", "0.0", "10", "10.0", "-10"]:
        assert identity._amount(value) == _key_before(value), value


BASE = {"itemCode": 110, "txType": 2, "txPoint": "10", "balance": "16427.4", "txDT": "20261120150000",
        "serviceUserID": "", "userID": "user01", "userName": "김하나"}  # fmt: skip
PAYMENT = {"regDT": "20261120150000", "productType": "포인트", "productName": "충전", "settleType": "무통장",
           "settlerName": "김", "settlerEmail": "a@b.c", "settleCost": "11000", "settlePoint": "10000"}  # fmt: skip


@pytest.mark.parametrize(
    ("row", "fields", "stored_key"),
    [
        # Computed by the code before the one rule: rows stored by it must be found again.
        ({**BASE, "txPoint": "10"}, identity.USAGE_KEY, "14563731-d103-137d-5259-a6953a86912a"),
        ({**BASE, "txPoint": "10.0"}, identity.USAGE_KEY, "14563731-d103-137d-5259-a6953a86912a"),
        ({**BASE, "txPoint": 10}, identity.USAGE_KEY, "14563731-d103-137d-5259-a6953a86912a"),
        ({**BASE, "txPoint": Decimal("10.0")}, identity.USAGE_KEY, "14563731-d103-137d-5259-a6953a86912a"),
        ({**BASE, "txPoint": "16427.40"}, identity.USAGE_KEY, "8fa0eef2-e333-ddea-6eab-c6993a93b5e2"),
        ({**BASE, "txPoint": "-10"}, identity.USAGE_KEY, "42e180e6-b3f9-928d-b671-3f49f312d381"),
        ({**BASE, "txPoint": "-10.50"}, identity.USAGE_KEY, "95bc7bf6-2dd5-8a26-e4fe-7adad7b2e6cd"),
        ({**BASE, "txPoint": "0"}, identity.USAGE_KEY, "d381b217-af4c-f6f4-e559-8ebb8f9db9fe"),
        (PAYMENT, identity.PAYMENT_KEY, "7006f79d-c6d1-445f-57d9-921b02fec077"),
        ({**PAYMENT, "settleCost": 11000}, identity.PAYMENT_KEY, "7006f79d-c6d1-445f-57d9-921b02fec077"),
        ({**PAYMENT, "settleCost": ""}, identity.PAYMENT_KEY, "b175c8ab-04bb-8cf8-ba2f-abb955802217"),
        ({**PAYMENT, "settleCost": None}, identity.PAYMENT_KEY, "b375af19-e2c6-1ad2-e6a1-60e3f201e459"),
    ],
)
def test_row_keys_already_stored(row, fields, stored_key):
    assert identity.row_key(row, fields) == stored_key
    if fields == identity.USAGE_KEY:
        assert identity.usage_key(row) == stored_key


def test_screening_applies_its_limits_to_the_parsed_amount():
    assert screen_row("usage", usage_row(1, TODAY, txPoint="-1,234.5"), LIMITS) is None  # txPoint may be signed
    assert screen_row("usage", usage_row(1, TODAY, balance="-1,234.5"), LIMITS).endswith("is negative")
    assert "decimal places" in screen_row("usage", usage_row(1, TODAY, balance="1.00001"), LIMITS)
    assert "LEDGER_ROW_MAX_POINTS" in screen_row("usage", usage_row(1, TODAY, balance="1e400"), LIMITS)
    assert "LEDGER_ROW_MAX_POINTS" in screen_row("usage", usage_row(1, TODAY, balance="10,000,000,001"), LIMITS)
    assert screen_row("usage", usage_row(1, TODAY, balance="10,000,000,000"), LIMITS) is None


def test_the_plain_shape_by_text_is_the_rule():
    """plain_amount (the one-pass writer's shortcut) gives what parse_amount gives, or nothing."""
    forms = [f for f in ACCEPTED if isinstance(f, str)] + [f for f in NOT_AMOUNTS if isinstance(f, str)]
    forms += [str(f) for f in _popbill_forms(random.Random(21)) if not isinstance(f, Decimal)]
    forms += ["0.12345", "12345678901", "1234567890", "-0.0", "00", "-", "", "1.2.3"]
    taken = 0
    for form in forms:
        plain = plain_amount(form, LIMITS.max_digits, 4)
        if plain is None:
            continue
        taken += 1
        number = parse_amount(form)
        assert plain == (amount_key(number), number < 0) and str(number) == form, form
        assert len(str(abs(int(number)))) < LIMITS.max_digits
    assert taken > 1000
