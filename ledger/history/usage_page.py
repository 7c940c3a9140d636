"""A page of usage rows screened and turned into COPY bytes in one pass.

The initial sync of a large member spends most of its client time per row, so each field of
a usage row is looked at once: checked (ledger.history.screening's rules) and formatted into
its column and its part of the row key (ledger.history.writer, ledger.history.identity) in
the same step. That is done for the shape nearly every row has: dates as 14 digits, codes
as ints, amounts as plain decimal strings, the three text fields as text with nothing to
escape. Any other row goes the general way, screen_row and then the writer's COPY line, so
the outcome is always exactly screen_row followed by prepare_usage_copy.

What is seen often is worked out once: the text and offset of an hour, and what each
distinct txPoint comes to (ledger.amounts.plain_amount: its key text, its sign).
"""

from __future__ import annotations

import dataclasses
import hashlib

import orjson

from ledger.amounts import plain_amount
from ledger.history import identity
from ledger.history.screening import MAX_FIELDS, MAX_FRACTION_DIGITS, MAX_TEXT, RowLimits, screen_row
from ledger.history.writer import kst_hour, usage_line

_CACHE_LIMIT = 100_000  # entries per cache; emptied when reached (a cache, not a store)


@dataclasses.dataclass(frozen=True)
class UsageCopy:
    """A usage page ready to write: COPY text as bytes, its row count, and the rows refused
    as (row, reason) for the quarantine."""

    data: bytes
    rows: int
    refused: list


# yyyyMMddHH -> (the column's text up to the minutes, its KST offset), or None for an hour
# that is not a calendar hour or in which KST moved (those rows go the general way).
_HOURS: dict[str, tuple[str, str] | None] = {}


def _hour_text(hour: str) -> tuple[str, str] | None:
    month, day, h = hour[4:6], hour[6:8], hour[8:10]
    if not ("01" <= month <= "12" and "01" <= day <= "31" and h <= "23"):
        return None
    try:
        text = kst_hour(hour)
    except ValueError:  # the 30th of February and the like
        return None
    if text is None:
        return None
    prefix, offset = text.split("\x00")
    return prefix, offset


# Per row limit (max_points): txPoint string -> what plain_amount makes of it (a few distinct
# points repeat on every page; nearly every balance differs, so balances are not kept).
_AMOUNTS: dict[object, dict[str, tuple[str, bool] | None]] = {}


def screen_usage_copy(member_id: int, rows, counter: identity.OccurrenceCounter, limits: RowLimits) -> UsageCopy:
    """screen_row on every row and prepare_usage_copy of those it keeps, in one pass. The row
    key is written as 32 hex digits (the same uuid to PostgreSQL, without the dashes)."""
    member = str(member_id)
    earliest, latest, max_digits = limits.earliest, limits.latest, limits.max_digits
    hours, number, seen, digest, dumps = _HOURS, counter.next, counter.seen, hashlib.blake2b, orjson.dumps
    amounts = _AMOUNTS.get(limits.max_points)
    if amounts is None or len(amounts) > _CACHE_LIMIT:
        amounts = _AMOUNTS[limits.max_points] = {}
    if len(hours) > _CACHE_LIMIT:
        hours.clear()
    # Each line starts with the newline of the line before; the first is cut off at the end.
    lines: list[bytes] = []
    refused: list[tuple[object, str]] = []
    for row in rows:
        if type(row) is dict and len(row) <= MAX_FIELDS:
            try:
                tx_dt, item, tx_type, point = row["txDT"], row["itemCode"], row["txType"], row["txPoint"]
                balance, service_user, user, name = row["balance"], row["serviceUserID"], row["userID"], row["userName"]
            except KeyError:
                tx_dt = None  # a field missing: the general way says which
            if (
                type(tx_dt) is str and len(tx_dt) == 14 and tx_dt.isdigit() and tx_dt.isascii()
                and earliest <= tx_dt <= latest and tx_dt[10:12] <= "59" and tx_dt[12:] <= "59"
                and type(item) is int and 0 <= item <= 999 and type(tx_type) is int and 0 <= tx_type <= 99
                and type(point) is str and type(balance) is str
                and type(service_user) is str and type(user) is str and type(name) is str
            ):  # fmt: skip
                at = hours.get(tx_dt[:10], False)
                if at is False:
                    at = hours[tx_dt[:10]] = _hour_text(tx_dt[:10])
                p = amounts.get(point, False)  # a few distinct points: looked up
                if p is False:
                    p = amounts[point] = plain_amount(point, max_digits, MAX_FRACTION_DIGITS)
                b = plain_amount(balance, max_digits, MAX_FRACTION_DIGITS)
                texts = service_user + user + name
                # Printable: no tab, newline, carriage return or NUL (nothing for COPY to escape
                # or for screening to repair), and no backslash either.
                if (
                    at is not None and p is not None and b is not None and not b[1]
                    and len(texts) <= MAX_TEXT and texts.isprintable() and "\\" not in texts
                ):  # fmt: skip
                    try:
                        raw = dumps(row)
                    except TypeError:  # a Decimal (not decoded by orjson) or an unpaired surrogate
                        raw = None
                    if raw is not None and b"\\" in raw:
                        # JSON escapes: doubled for COPY; an escaped NUL is for screening to repair.
                        raw = None if b"\\u0000" in raw else raw.replace(b"\\", b"\\\\")
                    if raw is not None:
                        key = digest(
                            f"{tx_dt}\x1f{item}\x1f{tx_type}\x1f{p[0]}\x1f{b[0]}\x1f{service_user}\x1f{user}\x1f{name}"
                            .encode(), digest_size=16,
                        ).hexdigest()  # fmt: skip
                        occurrence = seen.get(key, 0)
                        seen[key] = occurrence + 1
                        lines.append(
                            f"\n{member}\t{key}\t{occurrence}\t{at[0]}{tx_dt[10:12]}:{tx_dt[12:]}{at[1]}\t{item}\t"
                            f"{tx_type}\t{point}\t{balance}\t{service_user}\t{user}\t{name}\t".encode()
                        )  # fmt: skip
                        lines.append(raw)
                        continue
        # Not the common shape: the general way, the same rules and the same text.
        reason = screen_row("usage", row, limits)
        if reason is not None:
            refused.append((row, reason))
            continue
        key = identity.usage_key(row).replace("-", "")
        lines.append(b"\n" + usage_line(member, row, key, number(key)).encode()[:-1])
    return UsageCopy(b"".join(lines)[1:] + b"\n" if lines else b"", len(rows) - len(refused), refused)
