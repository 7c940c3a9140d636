"""Identity of history rows, which carry no id of their own.

A row's key is a hash of its immutable fields, canonicalised (amounts as normalised decimals,
codes as integers), so the same row always gets the same key. Mutable fields (settleState,
stateDT, refund state) are left out: they change while the row stays the same row. Exact
repeats of a key within one fetch are numbered by an occurrence counter in the order the
server lists them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from decimal import Decimal, InvalidOperation

USAGE_KEY = ("txDT", "itemCode", "txType", "txPoint", "balance", "serviceUserID", "userID", "userName")
PAYMENT_KEY = (
    "regDT",
    "productType",
    "productName",
    "settleType",
    "settlerName",
    "settlerEmail",
    "settleCost",
    "settlePoint",
)
REFUND_KEY = ("reqDT", "requestPoint", "accountBank", "accountNum", "accountName", "reason")

_AMOUNTS = {"txPoint", "balance", "settleCost", "settlePoint", "requestPoint"}
_CODES = {"itemCode", "txType"}


def _canonical(field: str, value) -> str:
    if value is None:
        return "\x00"
    if field in _AMOUNTS:
        try:
            return format(Decimal(str(value)).normalize(), "f")
        except InvalidOperation:
            return str(value)
    if field in _CODES:
        try:
            return str(int(value))
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def row_key(raw: dict, fields: tuple[str, ...]) -> str:
    text = "\x1f".join(_canonical(f, raw.get(f)) for f in fields)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class OccurrenceCounter:
    """Numbers exact repeats across all pages of one fetch (repeats may straddle a page)."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def next(self, key: str) -> int:
        occurrence = self._seen[key]
        self._seen[key] = occurrence + 1
        return occurrence
