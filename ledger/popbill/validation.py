"""Argument checks run before any request, so a bad call sends nothing."""

from __future__ import annotations

import datetime as dt
import re
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
MAX_TEXT = 500  # account numbers, reasons


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


# The most a request may ask for unless told otherwise (LEDGER_MONEY_MAX_WON).
DEFAULT_MAX_WON = Decimal("10000000")
_WON_TEXT = re.compile(r"\d{1,3}(,\d{3})+|\d+")


def won(name: str, value: object, maximum: Decimal = DEFAULT_MAX_WON, call: str | None = None) -> Decimal:
    """Money (or points, one to a won) one request asks for: a whole number of won from 1 to
    `maximum`, written as digits (1e3, 10.5, -1, NaN are refused, not read generously)."""
    bounds = f"a whole number of won from 1 to {maximum:,} (LEDGER_MONEY_MAX_WON)"
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidRequestError(name, f"must be {bounds}, got {value!r}", call=call)
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
        if not amount.is_finite() or amount != amount.to_integral_value():
            raise InvalidRequestError(name, f"must be {bounds}, got {value!r}", call=call)
    elif isinstance(value, str) and _WON_TEXT.fullmatch(value.strip()):
        amount = Decimal(value.strip().replace(",", ""))
    else:
        raise InvalidRequestError(name, f"must be {bounds}, got {value!r}", call=call)
    if not 1 <= amount <= maximum:
        raise InvalidRequestError(name, f"must be {bounds}, got {value!r}", call=call)
    return amount.quantize(Decimal(1))


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[A-Za-z0-9._%+'-]+@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,}}")
MAX_EMAIL = 100
MAX_NAME = 100


def email(name: str, value: object, call: str | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(name, "is required (an email address)", call=call)
    text = value.strip()
    if len(text) > MAX_EMAIL or not _EMAIL.fullmatch(text) or ".." in text:
        raise InvalidRequestError(name, f"is not an email address such as name@example.co.kr: {value!r}", call=call)
    return text


def _digits(value: str) -> str | None:
    """The digits of a telephone number written with optional hyphens or spaces, else None."""
    text = value.strip()
    if not text or not all(c.isascii() and (c.isdigit() or c in "- ") for c in text) or "--" in text:
        return None
    return "".join(c for c in text if c.isdigit())


def mobile(name: str, value: object, call: str | None = None) -> str:
    """A Korean mobile number, as Popbill sends its notices to: 010-1234-5678 or 01012345678."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(name, "is required (a mobile number such as 010-1234-5678)", call=call)
    digits = _digits(value)
    if digits is None or not re.fullmatch(r"01[016789]\d{7,8}", digits):
        raise InvalidRequestError(name, f"is not a mobile number such as 010-1234-5678: {value!r}", call=call)
    return value.strip()


def telephone(name: str, value: object, call: str | None = None) -> str:
    """A Korean telephone number: an area or mobile prefix, 9 to 11 digits (02-123-4567, 031-123-4567,
    010-1234-5678), hyphens optional."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(name, "is required (a telephone number such as 02-123-4567)", call=call)
    digits = _digits(value)
    if digits is None or not re.fullmatch(r"0\d{8,10}", digits):
        raise InvalidRequestError(name, f"is not a telephone number such as 02-123-4567: {value!r}", call=call)
    return value.strip()


def _required_text(name: str, value: object, call: str | None, limit: int = MAX_NAME) -> None:
    if not isinstance(value, str) or value.strip() == "":
        raise InvalidRequestError(name, "is required", call=call)
    if len(value) > limit:
        raise InvalidRequestError(name, f"at most {limit} characters, got {len(value)}", call=call)
    if any(not c.isprintable() for c in value):
        raise InvalidRequestError(name, f"holds a control character: {value!r}", call=call)


def payment_form(form: object, call: str | None = None, *, maximum: Decimal = DEFAULT_MAX_WON) -> PaymentForm:
    if not isinstance(form, PaymentForm):
        raise InvalidRequestError("PaymentForm", "must be a PaymentForm", call=call)
    _required_text("PaymentForm.settlerName", form.settler_name, call)
    email("PaymentForm.settlerEmail", form.settler_email, call)
    mobile("PaymentForm.notifyHP", form.notify_hp, call)
    _required_text("PaymentForm.paymentName", form.payment_name, call)
    won("PaymentForm.settleCost", form.settle_cost, maximum, call)
    return form


def refund_form(form: object, call: str | None = None, *, maximum: Decimal = DEFAULT_MAX_WON) -> RefundForm:
    if not isinstance(form, RefundForm):
        raise InvalidRequestError("RefundForm", "must be a RefundForm", call=call)
    _required_text("RefundForm.contactName", form.contact_name, call)
    telephone("RefundForm.tel", form.tel, call)
    for name, value in (
        ("RefundForm.accountBank", form.account_bank),
        ("RefundForm.accountNum", form.account_num),
        ("RefundForm.accountName", form.account_name),
        ("RefundForm.reason", form.reason),
    ):
        _required_text(name, value, call, limit=MAX_TEXT)
    if form.account_bank.strip().isdigit():
        raise InvalidRequestError(
            "RefundForm.accountBank",
            f"the bank's name as Popbill's examples send it (for example 국민, 신한), not a code: {form.account_bank!r}",
            call=call,
        )
    won("RefundForm.requestPoint", form.request_point, maximum, call)
    return form
