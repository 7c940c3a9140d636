"""Typed results of the point-management calls, and the one check of each answer's shape.

Every point, cost and balance is a Decimal; every yyyyMMdd[HHmmss] field an aware datetime
in Asia/Seoul; state and type codes stay raw ints (their meaning lives in ledger.popbill.codes);
`raw` keeps the dict as it came, for audit.

`from_answer` is where each call's answer is judged, once: an answer that is not clearly one
of the documented shapes (a missing or mistyped field, `{}`, NaN, Infinity, 1e400, a negative
balance, a code that is not a small whole number, a date that is not yyyyMMdd[HHmmss]) raises
ShapeError naming the field, and the requestor turns it into a MalformedAnswerError: doubt,
never a fact. Numbers, dates and codes are judged by the same functions that screen history
rows (ledger.history.screening), so a value means the same wherever it arrives.
`from_wire` only converts, for rows that screening has already passed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

from ledger.history import screening
from ledger.history.screening import RowLimits
from ledger.kst import parse_popbill_datetime

T = TypeVar("T")

MAX_CODE_CHARS = 40  # settle and refund codes: Popbill documents 18; tracked_items.code holds 40
MAX_URL_CHARS = 2000
MAX_TEXT_CHARS = 500
PAGE_NUMBERS = ("total", "perPage", "pageNum", "pageCount")
MAX_PAGE_NUMBER = 10**9


class ShapeError(ValueError):
    """An answer outside the documented shape; `field` names where (e.g. 'remainPoint',
    'list[3].txDT')."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def to_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        # Only reachable if someone parsed JSON without parse_float=Decimal.
        raise TypeError("points must never travel as float")
    try:
        return Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {value!r}") from None


def to_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# -- the checks, one per kind of value -----------------------------------------------------


def _object(answer: object) -> dict:
    if type(answer) is not dict:
        raise ShapeError("answer", f"not a JSON object but {type(answer).__name__}")
    if not answer:
        raise ShapeError("answer", "an empty object {}")
    return answer


def _points(d: dict, name: str, limits: RowLimits, *, signed: bool = False) -> Decimal:
    """A required amount: finite, at most four decimal places, within LEDGER_ROW_MAX_POINTS,
    and not negative unless `signed`."""
    value = d.get(name)
    if value is None or value == "":
        raise ShapeError(name, "missing" if name not in d else f"{value!r} instead of a number")
    if problem := screening.amount_problem(value, limits, signed):
        raise ShapeError(name, problem)
    return to_decimal(value)


def _state(d: dict, name: str, largest: int = 99) -> int:
    """A required state code: a whole number from 0 to `largest` (what it means is for
    ledger.popbill.codes; a number outside the documented ones is 'unknown' there)."""
    value = d.get(name)
    if value is None or value == "":
        raise ShapeError(name, "missing" if name not in d else f"{value!r} instead of a state code")
    if type(value) is not int and (problem := screening.code_problem(value, largest)):
        raise ShapeError(name, problem)
    if type(value) is int and not 0 <= value <= largest:
        raise ShapeError(name, f"{value!r} is not a code (a whole number from 0 to {largest})")
    return int(value)


def _optional_text(d: dict, name: str) -> str | None:
    value = d.get(name)
    if value is None:
        return None
    if type(value) is not str:
        raise ShapeError(name, f"not text but {type(value).__name__}")
    if len(value) > MAX_TEXT_CHARS:
        raise ShapeError(name, f"{len(value)} characters, more than {MAX_TEXT_CHARS}")
    return value


def _code(d: dict, name: str) -> str:
    """A settle or refund code: non-empty text (or a whole number) that can travel in a path."""
    value = d.get(name)
    if type(value) is int and value >= 0:
        value = str(value)
    if type(value) is not str or not value.strip():
        raise ShapeError(name, "missing" if name not in d else f"{value!r} is not a code")
    value = value.strip()
    if len(value) > MAX_CODE_CHARS or not value.isascii() or not value.isprintable() or any(c in value for c in "/?# "):
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise ShapeError(name, f"{shown!r} is not a code (at most {MAX_CODE_CHARS} printable ASCII characters)")
    return value


def _count(d: dict, name: str) -> int:
    value = d.get(name)
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if type(value) is not int or not 0 <= value <= MAX_PAGE_NUMBER:
        raise ShapeError(name, "missing" if name not in d else f"{_show(value)} is not a whole number of at least 0")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _row(kind: str, d: object, limits: RowLimits, state: str | None = None) -> dict:
    """A history-shaped answer (one deposit, one refund, a page's row): the row screening of
    the sync, plus its state when the call is asked for exactly that."""
    if type(d) is dict and not d:
        raise ShapeError("answer", "an empty object {}")
    if problem := screening.screen_row(kind, d, limits):
        field, _, reason = problem.partition(": ")
        raise ShapeError(field if reason else "answer", reason or problem)
    if state is not None:
        _state(d, state)
    return d


# -- single values -------------------------------------------------------------------------


def balance_from_answer(answer: object, name: str, limits: RowLimits) -> Decimal:
    """GetBalance and GetPartnerBalance (`remainPoint`), GetRefundableBalance
    (`refundableBalance`), GetUnitCost (`unitCost`): one amount, zero or more."""
    return _points(_object(answer), name, limits)


def url_from_answer(answer: object) -> str:
    """The popup URL calls: {"url": "https://..."}."""
    value = _object(answer).get("url")
    if type(value) is not str or not value.startswith(("https://", "http://")) or len(value) > MAX_URL_CHARS:
        raise ShapeError("url", "missing" if value is None else f"{_show(value)} is not an http(s) URL")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ShapeError("url", f"{_show(value)} holds spaces or control characters")
    return value


_frozen = dataclasses.dataclass(frozen=True, slots=True)
_raw = dataclasses.field(repr=False, compare=False)


@_frozen
class ChargeInfo:
    unit_cost: Decimal | None
    charge_method: str | None
    rate_system: str | None
    raw: dict = _raw

    @classmethod
    def from_wire(cls, d: dict) -> ChargeInfo:
        return cls(to_decimal(d.get("unitCost")), _text(d.get("chargeMethod")), _text(d.get("rateSystem")), d)

    @classmethod
    def from_answer(cls, answer: object, limits: RowLimits) -> ChargeInfo:
        d = _object(answer)
        unit_cost = _points(d, "unitCost", limits)
        return cls(unit_cost, _optional_text(d, "chargeMethod"), _optional_text(d, "rateSystem"), d)


@_frozen
class PaymentResponse:
    code: int | None
    message: str | None
    settle_code: str
    raw: dict = _raw

    @classmethod
    def from_answer(cls, answer: object) -> PaymentResponse:
        # A refusal ({code: negative, message}) never gets here: the requestor raises it.
        d = _object(answer)
        return cls(_positive_code(d), _optional_text(d, "message"), _code(d, "settleCode"), d)


@_frozen
class RefundResponse:
    code: int | None
    message: str | None
    refund_code: str
    raw: dict = _raw

    @classmethod
    def from_answer(cls, answer: object) -> RefundResponse:
        d = _object(answer)
        return cls(_positive_code(d), _optional_text(d, "message"), _code(d, "refundCode"), d)


def _positive_code(d: dict) -> int | None:
    value = d.get("code")
    if value is None:
        return None
    if type(value) is str and value.lstrip("-").isdigit() and len(value) <= 12:
        value = int(value)
    if type(value) is not int:
        raise ShapeError("code", f"{_show(value)} is not a whole number")
    return value


@_frozen
class PaymentHistory:
    product_type: str | None
    product_name: str | None
    settle_type: str | None
    settler_name: str | None
    settler_email: str | None
    settle_cost: Decimal | None
    settle_point: Decimal | None
    settle_state: int | None
    reg_dt: dt.datetime | None
    state_dt: dt.datetime | None
    raw: dict = _raw

    @classmethod
    def from_wire(cls, d: dict) -> PaymentHistory:
        return cls(
            _text(d.get("productType")),
            _text(d.get("productName")),
            _text(d.get("settleType")),
            _text(d.get("settlerName")),
            _text(d.get("settlerEmail")),
            to_decimal(d.get("settleCost")),
            to_decimal(d.get("settlePoint")),
            to_int(d.get("settleState")),
            parse_popbill_datetime(d.get("regDT")),
            parse_popbill_datetime(d.get("stateDT")),
            d,
        )

    @classmethod
    def from_answer(cls, answer: object, limits: RowLimits, *, with_state: bool = False) -> PaymentHistory:
        """with_state: GetSettleResult, asked for exactly the deposit's state."""
        return cls.from_wire(_row("payments", answer, limits, "settleState" if with_state else None))


@_frozen
class UseHistory:
    item_code: int | None
    tx_type: int | None
    tx_point: Decimal | None
    balance: Decimal | None
    tx_dt: dt.datetime | None
    service_user_id: str | None
    user_id: str | None
    user_name: str | None
    raw: dict = _raw

    @classmethod
    def from_wire(cls, d: dict) -> UseHistory:
        return cls(
            to_int(d.get("itemCode")),
            to_int(d.get("txType")),
            to_decimal(d.get("txPoint")),
            to_decimal(d.get("balance")),
            parse_popbill_datetime(d.get("txDT")),
            _text(d.get("serviceUserID")),
            _text(d.get("userID")),
            _text(d.get("userName")),
            d,
        )

    @classmethod
    def from_answer(cls, answer: object, limits: RowLimits) -> UseHistory:
        return cls.from_wire(_row("usage", answer, limits))


@_frozen
class RefundHistory:
    req_dt: dt.datetime | None
    request_point: Decimal | None
    account_bank: str | None
    account_num: str | None
    account_name: str | None
    state: int | None
    reason: str | None
    raw: dict = _raw

    @classmethod
    def from_wire(cls, d: dict) -> RefundHistory:
        return cls(
            parse_popbill_datetime(d.get("reqDT")),
            to_decimal(d.get("requestPoint")),
            _text(d.get("accountBank")),
            _text(d.get("accountNum")),
            _text(d.get("accountName")),
            to_int(d.get("state")),
            _text(d.get("reason")),
            d,
        )

    @classmethod
    def from_answer(cls, answer: object, limits: RowLimits, *, with_state: bool = False) -> RefundHistory:
        """with_state: GetRefundInfo, asked for exactly the refund's state."""
        return cls.from_wire(_row("refunds", answer, limits, "state" if with_state else None))


@_frozen
class Page(Generic[T]):
    """One page of a *HistoryResult."""

    code: int | None
    total: int
    per_page: int
    page_num: int
    page_count: int
    items: tuple[T, ...]
    raw: dict = _raw

    @property
    def is_last(self) -> bool:
        """No page follows this one (an empty result is one page)."""
        return self.page_num >= max(self.page_count, 1)

    @classmethod
    def from_answer(cls, answer: object, item_type, limits: RowLimits) -> Page:
        """The envelope must be whole: `list` a list and total, perPage, pageNum and pageCount
        whole numbers, every one present (a page without them is no evidence that a window
        is empty). item_type None keeps the rows as the wire dicts they came as, for a caller
        that screens each row itself (the sync, which quarantines a bad row and keeps the
        others); otherwise each row must pass, or the page is malformed."""
        d = _object(answer)
        rows = d.get("list")
        if type(rows) is not list:
            raise ShapeError("list", "missing" if "list" not in d else f"{_show(rows)} instead of a list of rows")
        total, per_page, page_num, page_count = (_count(d, name) for name in PAGE_NUMBERS)
        if item_type is None:
            items = tuple(rows)
        else:
            typed = []
            for n, row in enumerate(rows):
                try:
                    typed.append(item_type.from_answer(row, limits))
                except ShapeError as exc:
                    raise ShapeError(f"list[{n}].{exc.field}", exc.reason) from None
            items = tuple(typed)
        return cls(_positive_code(d), total, per_page, page_num, page_count, items,
                   {k: v for k, v in d.items() if k != "list"})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class PaymentForm:
    settler_name: str
    settler_email: str
    notify_hp: str
    payment_name: str
    settle_cost: Decimal

    def to_wire(self) -> dict:
        return {
            "settlerName": self.settler_name,
            "settlerEmail": self.settler_email,
            "notifyHP": self.notify_hp,
            "paymentName": self.payment_name,
            "settleCost": str(self.settle_cost),
        }


@dataclasses.dataclass(frozen=True)
class RefundForm:
    contact_name: str
    tel: str
    request_point: Decimal
    account_bank: str
    account_num: str
    account_name: str
    reason: str

    def to_wire(self) -> dict:
        return {
            "contactName": self.contact_name,
            "tel": self.tel,
            "requestPoint": str(self.request_point),
            "accountBank": self.account_bank,
            "accountNum": self.account_num,
            "accountName": self.account_name,
            "reason": self.reason,
        }
