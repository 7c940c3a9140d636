"""Argument checks run before any request, so a bad call sends nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from ledger.popbill.errors import InvalidRequestError
from ledger.popbill.models import PaymentForm, RefundForm

MAX_PER_PAGE = 1000
SERVICE_TYPES = ("성명", "실명")
ORDERS = ("D", "A")


def corp_num(value: object, call: str | None = None) -> str:
    """10 digits after stripping hyphens. The check digit is deliberately not enforced:
    Popbill's own test number 1234567890 fails it."""
    if not isinstance(value, str):
        raise InvalidRequestError("CorpNum", "is required (10 digits)", call=call)
    digits = value.strip().replace("-", "")
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        raise InvalidRequestError("CorpNum", f"must be 10 digits, got {value!r}", call=call)
    return digits


def popbill_date(name: str, value: object, call: str | None = None) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or len(value) != 8 or not value.isdigit():
        raise InvalidRequestError(name, f"must be a date as yyyyMMdd, got {value!r}", call=call)
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise InvalidRequestError(name, f"is not a real date: {value!r}", call=call) from None


def date_range(s_date: object, e_date: object, call: str | None = None) -> tuple[str, str]:
    start = popbill_date("SDate", s_date, call)
    end = popbill_date("EDate", e_date, call)
    if start > end:
        raise InvalidRequestError("SDate", f"{start:%Y%m%d} is after EDate {end:%Y%m%d}", call=call)
    return f"{start:%Y%m%d}", f"{end:%Y%m%d}"


def page(value: object, call: str | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError("Page", f"must be an integer >= 1, got {value!r}", call=call)
    return value


def per_page(value: object, call: str | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PER_PAGE:
        raise InvalidRequestError("PerPage", f"must be an integer from 1 to {MAX_PER_PAGE}, got {value!r}", call=call)
    return value


def order(value: object, call: str | None = None) -> str | None:
    if value is None:
        return None
    if value not in ORDERS:
        raise InvalidRequestError("Order", f"must be D or A, got {value!r}", call=call)
    return value


def service_type(value: object, *, required: bool, call: str | None = None) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidRequestError("ServiceType", "is required (성명 or 실명)", call=call)
        return None
    if value not in SERVICE_TYPES:
        raise InvalidRequestError("ServiceType", f"must be 성명 or 실명, got {value!r}", call=call)
    return value


def togo(value: object, call: str | None = None) -> str:
    if value != "CHRG":
        raise InvalidRequestError("TOGO", f"must be CHRG, got {value!r}", call=call)
    return value


def code(name: str, value: object, call: str | None = None) -> str:
    if not isinstance(value, str) or value.strip() == "":
        raise InvalidRequestError(name, "is required", call=call)
    if "/" in value or "?" in value or "#" in value:
        raise InvalidRequestError(name, f"contains a character not allowed in a code: {value!r}", call=call)
    return value.strip()


USER_ID_MAX = 50


def user_id(value: object, call: str | None = None) -> str | None:
    """Sent as the x-pb-userid header: printable ASCII with no spaces (a CR/LF or Korean
    letter there breaks every request of the member)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > USER_ID_MAX:
        raise InvalidRequestError("UserID", f"must be a string of at most {USER_ID_MAX} characters", call=call)
    if not all("!" <= ch <= "~" for ch in value):
        raise InvalidRequestError(
            "UserID", f"must be printable ASCII letters, digits or symbols, no spaces, got {value!r}", call=call
        )
    return value


def positive_amount(name: str, value: object, call: str | None = None) -> Decimal:
    if isinstance(value, float):
        raise InvalidRequestError(name, "must be a Decimal or a string, never a float", call=call)
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidRequestError(name, f"is not a decimal amount: {value!r}", call=call) from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidRequestError(name, f"must be a positive amount, got {value!r}", call=call)
    return amount


def _required_text(name: str, value: object, call: str | None) -> None:
    if not isinstance(value, str) or value.strip() == "":
        raise InvalidRequestError(name, "is required", call=call)


def payment_form(form: object, call: str | None = None) -> PaymentForm:
    if not isinstance(form, PaymentForm):
        raise InvalidRequestError("PaymentForm", "must be a PaymentForm", call=call)
    for name, value in (
        ("PaymentForm.settlerName", form.settler_name),
        ("PaymentForm.settlerEmail", form.settler_email),
        ("PaymentForm.notifyHP", form.notify_hp),
        ("PaymentForm.paymentName", form.payment_name),
    ):
        _required_text(name, value, call)
    positive_amount("PaymentForm.settleCost", form.settle_cost, call)
    return form


def refund_form(form: object, call: str | None = None) -> RefundForm:
    if not isinstance(form, RefundForm):
        raise InvalidRequestError("RefundForm", "must be a RefundForm", call=call)
    for name, value in (
        ("RefundForm.contactName", form.contact_name),
        ("RefundForm.tel", form.tel),
        ("RefundForm.accountBank", form.account_bank),
        ("RefundForm.accountNum", form.account_num),
        ("RefundForm.accountName", form.account_name),
        ("RefundForm.reason", form.reason),
    ):
        _required_text(name, value, call)
    if form.account_bank.strip().isdigit():
        raise InvalidRequestError(
            "RefundForm.accountBank",
            f"the bank's name as Popbill's examples send it (for example 국민, 신한), not a code: {form.account_bank!r}",
            call=call,
        )
    positive_amount("RefundForm.requestPoint", form.request_point, call)
    return form
