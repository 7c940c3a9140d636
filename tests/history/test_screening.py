"""screen_row on its own: every rule, and the limits come from the settings."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from ledger.history.screening import RowLimits, screen_row
from ledger.settings import Settings, SettingsError
from tests.hostile import payment_row, refund_row, usage_row

TODAY = dt.date(2026, 11, 20)
LIMITS = RowLimits.for_sync(Settings(), TODAY)


def wire(row: dict) -> dict:
    """As the client decodes it: numbers with a fraction are Decimals."""
    return json.loads(json.dumps(row, default=float), parse_float=Decimal)


@pytest.mark.parametrize(
    "row",
    [
        usage_row(1, TODAY),
        usage_row(2, TODAY, txPoint=Decimal("12.5"), balance=16427),  # numbers, not strings
        usage_row(3, TODAY, txPoint="-10"),  # a signed txPoint is a magnitude within bounds
        usage_row(4, TODAY, txDT=f"{TODAY + dt.timedelta(days=2):%Y%m%d}235959", itemCode="183", txType=""),
        usage_row(5, TODAY, txDT="20240229120000", balance="1,234.5"),
        payment_row(1, TODAY, stateDT=""),
        refund_row(1, TODAY, accountNum=1234567),
    ],
)
def test_plausible_rows_pass(row):
    kind = "usage" if "txDT" in row else "payments" if "regDT" in row else "refunds"
    assert screen_row(kind, wire(row), LIMITS) is None


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (usage_row(1, TODAY, txDT=f"{TODAY + dt.timedelta(days=3):%Y%m%d}000000"), "txDT: "),
        (usage_row(1, TODAY, txDT="19991231235959"), "txDT: "),
        (usage_row(1, TODAY, txDT="20230229120000"), "txDT: '20230229120000' is not a calendar"),
        (usage_row(1, TODAY, txDT="20261120250000"), "txDT: '20261120250000' is not a calendar"),
        (usage_row(1, TODAY, txDT=20261120000000), "txDT: "),
        (usage_row(1, TODAY, txPoint="10000000001"), "txPoint: "),
        (usage_row(1, TODAY, txPoint="0.00001"), "txPoint: '0.00001' has more than 4"),
        (usage_row(1, TODAY, txPoint=True), "txPoint: "),
        (usage_row(1, TODAY, balance=None), "balance: missing"),
        (usage_row(1, TODAY, balance="sNaN"), "balance: "),
        (usage_row(1, TODAY, itemCode=1000), "itemCode: "),
        (usage_row(1, TODAY, txType=2.0), "txType: "),
        (usage_row(1, TODAY, userID=["a"]), "userID: not text"),
        (usage_row(1, TODAY, txDT="9" * 10**6), "txDT: '999"),  # a reason stays short, whatever the value
        ({f"k{n}": n for n in range(100)}, "100 fields"),
        (payment_row(1, TODAY, settleCost="-1"), "settleCost: '-1' is negative"),
        (refund_row(1, TODAY, reqDT=""), "reqDT: missing"),
    ],
)
def test_implausible_rows_are_refused_naming_the_field(row, reason):
    kind = "usage" if "txDT" in row or "k0" in row else "payments" if "regDT" in row else "refunds"
    found = screen_row(kind, wire(row), LIMITS) or ""
    assert found.startswith(reason) and len(found) < 200


def test_limits_follow_the_settings():
    settings = Settings.from_env(
        {"LEDGER_ROW_MAX_POINTS": "100", "LEDGER_ROW_EARLIEST_DATE": "2026-01-01", "LEDGER_ROW_MAX_FUTURE_DAYS": "0"}
    )
    limits = RowLimits.for_sync(settings, TODAY)
    assert screen_row("usage", wire(usage_row(1, TODAY, balance="101")), limits).startswith("balance: ")
    assert screen_row("usage", wire(usage_row(1, TODAY, txDT="20251231235959")), limits).startswith("txDT: ")
    assert screen_row("usage", wire(usage_row(1, TODAY, txDT="20261121000000")), limits).startswith("txDT: ")
    assert screen_row("usage", wire(usage_row(1, TODAY, balance="100")), limits) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEDGER_ROW_MAX_POINTS", "lots"),
        ("LEDGER_ROW_EARLIEST_DATE", "2000/01/01"),
        ("POPBILL_MAX_RESPONSE_BYTES", "12"),
        ("POPBILL_MAX_DECODED_BYTES", "big"),
        ("POPBILL_CALL_DEADLINE", "0"),
        ("POPBILL_MAX_PAGES", "0"),
    ],
)
def test_a_bad_limit_is_one_line_naming_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
