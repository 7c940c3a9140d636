"""The checks every history row passes before it becomes ledger data.

Popbill's answers are trusted for their shape, not their content: a broken or hostile
upstream has sent NaN and Infinity, negative amounts, dates in the year 9999 and the year 1,
and absurd codes. `screen_row` takes one row as decoded from the wire and says why it cannot
be kept, or None. A refused row goes to quarantine (ledger.history.quarantine), where
reconciliation reports it; the member's other rows are written as usual.

What can be repaired without losing the row is repaired in place: a NUL character (which
PostgreSQL cannot store in text or jsonb) and an unpaired surrogate (which cannot be
encoded) become U+FFFD in any text of the row. Other control characters are kept as sent.

The checks run on every row of million-row syncs, so each is a handful of type tests and
string comparisons; dates are compared as yyyyMMddHHmmss strings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from decimal import Decimal

from ledger.amounts import AmountError, parse_amount

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_TEXT = 500  # characters in any text field; Popbill documents 50 for user ids, 100 for names
MAX_FIELDS = 64  # keys in one row; Popbill sends 7 to 10
MAX_FRACTION_DIGITS = 4  # points are whole or carry a decimal or two

# Per kind: dates (name -> required), amounts (name -> (required, may be negative)), codes
# (name -> largest value), text fields. txPoint may arrive signed (Popbill does not document
# its sign; the simulator serves both conventions), so only its magnitude is bounded.
_SHAPES = {
    "usage": (
        {"txDT": True}, {"txPoint": (True, True), "balance": (True, False)}, {"itemCode": 999, "txType": 99},
        ("serviceUserID", "userID", "userName"),
    ),
    "payments": (
        {"regDT": True, "stateDT": False}, {"settleCost": (False, False), "settlePoint": (False, False)},
        {"settleState": 99}, ("productType", "productName", "settleType", "settlerName", "settlerEmail"),
    ),
    "refunds": (
        {"reqDT": True}, {"requestPoint": (False, False)}, {"state": 99},
        ("accountBank", "accountNum", "accountName", "reason"),
    ),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RowLimits:
    earliest: str  # yyyyMMddHHmmss, inclusive
    latest: str
    max_points: Decimal
    max_digits: int  # digits of the whole part of max_points: fewer is always within it

    @classmethod
    def for_sync(cls, settings, today: dt.date) -> RowLimits:
        """The limits for a sync on `today` (worked out once a day, not once per member)."""
        return _limits(settings.row_earliest_date, settings.row_max_future_days, settings.row_max_points, today)


@functools.lru_cache(maxsize=8)
def _limits(earliest: dt.date, max_future_days: int, max_points: Decimal, today: dt.date) -> RowLimits:
    latest = today + dt.timedelta(days=max_future_days)
    return RowLimits(
        earliest.strftime("%Y%m%d") + "000000", latest.strftime("%Y%m%d") + "235959", max_points,
        len(str(int(max_points))),
    )  # fmt: skip


def screen_row(kind: str, row: object, limits: RowLimits) -> str | None:
    """Why this wire row of `kind` ('usage', 'payments', 'refunds') cannot be kept, or None."""
    if type(row) is not dict:
        return f"not a JSON object but {type(row).__name__}"
    if len(row) > MAX_FIELDS:
        return f"{len(row)} fields, more than {MAX_FIELDS}"
    _repair_text(row)
    dates, amounts, codes, texts = _SHAPES[kind]
    for name, required in dates.items():
        value = row.get(name)
        if value is None or value == "":
            if required:
                return f"{name}: missing"
        elif reason := _date(value, limits):
            return f"{name}: {reason}"
    for name, (required, signed) in amounts.items():
        value = row.get(name)
        if value is None or value == "":
            if required:
                return f"{name}: missing"
        elif reason := _amount(value, limits, signed):
            return f"{name}: {reason}"
    for name, largest in codes.items():
        value = row.get(name)
        if type(value) is int:
            if 0 <= value <= largest:
                continue
        elif value is None or value == "":
            continue
        if reason := _code(value, largest):
            return f"{name}: {reason}"
    for name in texts:
        value = row.get(name)
        if type(value) is str:
            if len(value) > MAX_TEXT:
                return f"{name}: {len(value)} characters, more than {MAX_TEXT}"
        elif value is not None and type(value) is not int:
            return f"{name}: not text but {type(value).__name__}"
    return None


def _show(value) -> str:
    """A value for a reason: its repr, cut short (a hostile value may be megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _clean(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if not text.isascii():
        text = _SURROGATE.sub(REPLACEMENT, text)
    return text


def _dirty(text: str) -> bool:
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _repair_text(row: dict) -> None:
    """NUL and unpaired surrogates become U+FFFD, in keys and text values, in place."""
    for value in row.values():
        if type(value) is str and ("\x00" in value or not value.isascii()) and _dirty(value):
            break
    else:
        keys = "".join(row)
        if keys.isascii() and "\x00" not in keys:
            return  # the common case: nothing to repair
    for key in [k for k, v in row.items() if _dirty(k) or (type(v) is str and _dirty(v))]:
        value = row.pop(key)
        row[_clean(key)] = _clean(value) if type(value) is str else value


def _date(value, limits: RowLimits) -> str | None:
    if type(value) is not str or len(value) not in (8, 14) or not value.isascii() or not value.isdigit():
        return f"{_show(value)} is not yyyyMMdd[HHmmss]"
    stamp = value if len(value) == 14 else value + "000000"
    if stamp < limits.earliest or stamp > limits.latest:
        return f"{_show(value)} is outside the plausible range {limits.earliest[:8]} to {limits.latest[:8]}"
    # Compared as text (cheap); only a 29th to 31st needs the calendar.
    month, day = stamp[4:6], stamp[6:8]
    if not ("01" <= month <= "12" and "01" <= day <= "31" and stamp[8:10] <= "23" and stamp[10:12] <= "59"
            and stamp[12:] <= "59"):  # fmt: skip
        return f"{_show(value)} is not a calendar date-time"
    if day > "28":
        try:
            dt.date(int(stamp[:4]), int(month), int(day))
        except ValueError:
            return f"{_show(value)} is not a calendar date-time"
    return None


def _amount(value, limits: RowLimits, signed: bool) -> str | None:
    if type(value) is str and value.isascii():
        # The common shapes, '1234' and '16427.4', checked as text: no Decimal needed.
        whole, _, fraction = value.partition(".")
        if whole.isdigit() and (not fraction or fraction.isdigit()) and len(whole) <= limits.max_digits:
            if len(fraction) > MAX_FRACTION_DIGITS:
                return f"{_show(value)} has more than {MAX_FRACTION_DIGITS} decimal places"
            if len(whole) < limits.max_digits:
                return None  # fewer digits than the limit has: within it
    try:
        number = parse_amount(value)  # the one rule of what an amount is (ledger.amounts)
    except AmountError as exc:
        return f"{_show(value)} {exc.reason}"
    if number.as_tuple().exponent < -MAX_FRACTION_DIGITS:
        return f"{_show(value)} has more than {MAX_FRACTION_DIGITS} decimal places"
    if number < 0 and not signed:
        return f"{_show(value)} is negative"
    if abs(number) > limits.max_points:
        return f"{_show(value)} is beyond the limit of {limits.max_points} (LEDGER_ROW_MAX_POINTS)"
    return None


def _code(value, largest: int) -> str | None:
    if type(value) is int:
        number = value
    elif type(value) is str and value.isascii() and value.isdigit() and len(value) <= 6:
        number = int(value)
    else:
        return f"{_show(value)} is not a code (a whole number from 0 to {largest})"
    if number > largest or number < 0:
        return f"{_show(value)} is not a code (a whole number from 0 to {largest})"
    return None


# The same checks for one value, for the answers that are not history pages (balances, a
# single deposit or refund): ledger.popbill.models applies them, so a number or a date is
# judged the same way wherever it comes from.
amount_problem, date_problem, code_problem = _amount, _date, _code
