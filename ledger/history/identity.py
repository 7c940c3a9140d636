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


def _amount(value) -> str:
    text = str(value)
    if text.replace(".", "", 1).isdigit():  # the common case, done without Decimal
        whole, _, fraction = text.partition(".")
        whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
        return f"{whole}.{fraction}" if fraction else whole
    try:
        return format(Decimal(text).normalize(), "f")
    except InvalidOperation:
        return text


def _code(value) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def _text(value) -> str:
    return value if isinstance(value, str) else str(value)


def _canonicaliser(field: str):
    shape = _amount if field in _AMOUNTS else _code if field in _CODES else _text
    return lambda value: "\x00" if value is None else shape(value)


_CANONICAL = {f: _canonicaliser(f) for f in {*USAGE_KEY, *PAYMENT_KEY, *REFUND_KEY}}


def row_key(raw: dict, fields: tuple[str, ...]) -> str:
    """128 bits of BLAKE2b in the uuid text form PostgreSQL returns (an identity, not a secret)."""
    return _digest("\x1f".join([_CANONICAL[f](raw.get(f)) for f in fields]))


def _digest(text: str) -> str:
    h = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_TX_DT, _ITEM, _TX_TYPE, _POINT, _BALANCE, _SERVICE_USER, _USER, _NAME = (_CANONICAL[f] for f in USAGE_KEY)


def usage_key(raw: dict) -> str:
    """row_key(raw, USAGE_KEY), the same text hashed, for the million-row path: the usual
    types (text as str, codes as int) skip the generic canonicalisers."""
    get = raw.get
    tx_dt, item, tx_type = get("txDT"), get("itemCode"), get("txType")
    service_user, user, name = get("serviceUserID"), get("userID"), get("userName")
    return _digest(
        f"{tx_dt if type(tx_dt) is str else _TX_DT(tx_dt)}\x1f{item if type(item) is int else _ITEM(item)}\x1f"
        f"{tx_type if type(tx_type) is int else _TX_TYPE(tx_type)}\x1f{_POINT(get('txPoint'))}\x1f"
        f"{_BALANCE(get('balance'))}\x1f{service_user if type(service_user) is str else _SERVICE_USER(service_user)}"
        f"\x1f{user if type(user) is str else _USER(user)}\x1f{name if type(name) is str else _NAME(name)}"
    )


class OccurrenceCounter:
    """Numbers exact repeats across all pages of one fetch (repeats may straddle a page).

    Usage rows number theirs in the order they come (`next`): their key is the whole row, so
    repeats are identical and the order cannot matter. Payments and refunds with one key may
    differ in their mutable fields, so the writer chooses which occurrence each takes
    (`claim`), from the rows' content, not their order (ledger.history.writer)."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._claimed: dict[str, set[int]] = {}

    def next(self, key: str) -> int:
        occurrence = self._seen[key]
        self._seen[key] = occurrence + 1
        return occurrence

    def claimed(self, key: str) -> set[int]:
        """Occurrences of `key` already given out in this fetch."""
        return self._claimed.get(key, set())

    def claim(self, key: str, occurrence: int) -> int:
        self._claimed.setdefault(key, set()).add(occurrence)
        return occurrence
