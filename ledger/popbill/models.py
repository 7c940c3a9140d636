"""Typed results of the point-management calls.

Every point, cost and balance is a Decimal; every yyyyMMdd[HHmmss] field an aware datetime
in Asia/Seoul; state and type codes stay raw ints (their meaning lives in ledger.popbill.codes);
`raw` keeps the dict as it came, for audit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any, Generic, TypeVar

from ledger.amounts import parse_amount
from ledger.kst import parse_popbill_datetime

T = TypeVar("T")


def to_decimal(value: Any) -> Decimal | None:
    """An amount of a typed model: ledger.amounts' rule (AmountError, a ValueError, for a value
    that is not one)."""
    return parse_amount(value)


def to_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


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


@_frozen
class PaymentResponse:
    code: int | None
    message: str | None
    settle_code: str
    raw: dict = _raw

    @classmethod
    def from_wire(cls, d: dict) -> PaymentResponse:
        return cls(to_int(d.get("code")), _text(d.get("message")), str(d["settleCode"]), d)


@_frozen
class RefundResponse:
    code: int | None
    message: str | None
    refund_code: str
    raw: dict = _raw

    @classmethod
    def from_wire(cls, d: dict) -> RefundResponse:
        return cls(to_int(d.get("code")), _text(d.get("message")), str(d["refundCode"]), d)


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
    def from_wire(cls, d: dict, item_type) -> Page:
        """item_type None keeps the rows as the wire dicts they came as."""
        rows = d.get("list") or []
        return cls(
            to_int(d.get("code")),
            to_int(d.get("total")) or 0,
            to_int(d.get("perPage")) or 0,
            to_int(d.get("pageNum")) or 0,
            to_int(d.get("pageCount")) or 0,
            tuple(rows) if item_type is None else tuple(item_type.from_wire(r) for r in rows),
            {k: v for k, v in d.items() if k != "list"},
        )


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
