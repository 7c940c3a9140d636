"""One rule for amounts on the wire: points, costs and balances, in every answer Popbill gives.

Popbill sends amounts as decimal strings ("1000", "16427.4", "-10" for a signed txPoint) or
as JSON numbers (decoded exactly: ints, or Decimals). `parse_amount` says what such a value
is, or why it is not an amount; `amount_key` is the one text an amount stands for in a row's
identity, so the same amount written differently ("10", "10.0", 10, "1,234" and "1234")
always keys the same row; `amount_text` is its exact text for a NUMERIC column. Screening,
identity, the writer and the typed models all go through these.

An amount is, after any ASCII whitespace around it: an optional sign, ASCII digits with an
optional fraction and an optional exponent, or digits grouped by commas in threes
("1,234,567.5", as Korean and English write them). Anything else is refused: floats (a
float is never exact), booleans, NaN and Infinity in any spelling, other digits ("٣"),
underscores, commas that do not group in threes ("1,2" is a decimal comma elsewhere: doubt).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SPACE = " \t\n\r\f\v"
_NUMBER_CHARACTERS = "0123456789+-.eE"
_GROUPED = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")
# Beyond this many digits either side of the point an amount is absurd; its key stays short
# (scientific) instead of being written out in full (1e999999999 would be a gigabyte).
_LONGEST_PLAIN = 64


class AmountError(ValueError):
    """A wire value that is not an amount; `reason` completes "<value> ..."."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"not an amount: {_show(value)} {reason}")
        self.reason = reason


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def parse_amount(value: object) -> Decimal | None:
    """The amount a wire value holds; None when absent (null or ""); AmountError otherwise."""
    kind = type(value)
    if kind is str:
        if value == "":
            return None
        text = value.strip(_SPACE)
        if "," in text:
            if not _GROUPED.fullmatch(text):
                raise AmountError(value, "is not a number (commas must group digits in threes)")
            text = text.replace(",", "")
        if not text or not text.isascii() or text.strip(_NUMBER_CHARACTERS):
            raise AmountError(value, "is not a number")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise AmountError(value, "is not a number") from None
        return number  # only digits, signs, points and exponents: always finite
    if kind is int:
        return Decimal(value)
    if kind is Decimal:
        if not value.is_finite():
            raise AmountError(value, "is not a finite number")
        return value
    if value is None:
        return None
    # float (a NaN or Infinity literal, or a decoder that was not exact), bool, list, object
    raise AmountError(value, "is not a finite decimal number")


def amount_key(number: Decimal) -> str:
    """The canonical text: plain notation, no trailing zeros, no sign on zero ("1234.5", "0",
    "-3"). It is what identity hashes, so it must never change for a value already stored."""
    sign, digits, exponent = number.as_tuple()
    if -_LONGEST_PLAIN <= number.adjusted() <= _LONGEST_PLAIN and exponent >= -_LONGEST_PLAIN:
        text = format(number, "f")  # exact: no context rounding, unlike normalize()
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(number.normalize())  # never reached by a row screening lets through


def amount_text(number: Decimal) -> str:
    """The text of a NUMERIC column: the value exactly, with the decimal places it was sent with."""
    return str(number)


def wire_amount_key(value: object) -> str:
    """amount_key of a wire value; the common shapes ('1234', '16427.40') by text alone."""
    if type(value) is str:
        whole, dot, fraction = value.partition(".")
        if whole.isdigit() and whole.isascii() and (not dot or (fraction.isdigit() and fraction.isascii())):
            whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
            return f"{whole}.{fraction}" if fraction else whole
    number = parse_amount(value)
    if number is None:
        raise AmountError(value, "is missing")
    return amount_key(number)


def wire_amount_text(value: object) -> str | None:
    """amount_text of a wire value, None when absent; the common shapes by text alone."""
    if type(value) is str:
        whole, dot, fraction = value.partition(".")
        if (
            whole.isdigit() and whole.isascii() and (whole[0] != "0" or len(whole) == 1)
            and (not dot or (fraction.isdigit() and fraction.isascii() and len(fraction) <= 6))
        ):  # fmt: skip
            return value  # already what str(Decimal(value)) gives (seven places could be '1E-7')
    number = parse_amount(value)
    return None if number is None else str(number)


def plain_amount(value: str, max_digits: int, max_places: int) -> tuple[str, bool] | None:
    """(amount_key, negative) of the plain shape nearly every amount on the wire has: ASCII
    digits with no leading zero, fewer than max_digits of them before the point, at most
    max_places after it, an optional minus sign; written as str(Decimal(value)) writes it, so
    the wire text is already the column's. None for anything else (which then goes through
    parse_amount): the same results, by text alone."""
    negative = value[:1] == "-"
    whole, dot, fraction = (value[1:] if negative else value).partition(".")
    if not (
        whole.isdigit() and whole.isascii() and len(whole) < max_digits and (whole[0] != "0" or len(whole) == 1)
        and (not dot or (fraction.isdigit() and fraction.isascii() and len(fraction) <= max_places))
    ):  # fmt: skip
        return None
    fraction = fraction.rstrip("0")
    key = f"{whole}.{fraction}" if fraction else whole
    if negative:
        if key == "0":
            return None  # '-0' keys as '0': the general way
        key = "-" + key
    return key, negative
