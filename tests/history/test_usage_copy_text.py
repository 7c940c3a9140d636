"""The usage COPY text is written straight from the wire rows: every column must be the very
text the typed path (UseHistory.from_wire, then str/isoformat of each value) gave before, and
the row key the generic row_key's, so rows synced by older code keep deduplicating. The sync
screens and copies in one pass (screen_usage_copy): exactly screen_row, then that text."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import random
from decimal import Decimal

import pytest

from ledger import jsonutil
from ledger.history import identity
from ledger.history.screening import RowLimits, screen_row
from ledger.history.usage_page import screen_usage_copy
from ledger.history.writer import copy_field, prepare_usage_copy
from ledger.popbill.models import UseHistory
from ledger.settings import Settings

BASE = {"itemCode": 121, "txType": 2, "txPoint": "10", "balance": "990.5", "txDT": "20261120150000",
        "serviceUserID": "", "userID": "user01", "userName": "김하나"}  # fmt: skip

# Other digits ("٣") are no amount at all (tests/test_amounts.py): screening refuses them first.
AMOUNTS = ["0", "7", "10", "990.5", "16427.40", "0.05", "0.0001", "007", "00.5", "0.000000", "1,234", "1.", "-5",
           "12345678901234", "1,234.50", " 12", "1e3", "-0.5", "-0", 0, 12, -3, Decimal("1.10"), Decimal("0.0000001"),
           Decimal("1E+3"), None, ""]  # fmt: skip
CODES = [0, 7, 121, 999, "121", "007", "0", None, "", True]
DATES = ["20261120150000", "20261120", "20000101000000", "19870510023000", "19871011023000", "19880508030000",
         "19120101000000", "20241231235959", "20240229120000"]  # fmt: skip
TEXTS = ["", "user01", None, 'tab\there\nnew\\line "quoted" \u200b끝', "\\N", 12, "\r"]


def _old_line(member: str, row: UseHistory, key: str, occurrence: int) -> str:
    """The COPY line as the typed path built it before (writer._usage_line at bc566d3)."""

    def number(value) -> str:
        return "\\N" if value is None else str(value)

    return "\t".join(
        (
            member, key, str(occurrence), row.tx_dt.isoformat(), number(row.item_code), number(row.tx_type),
            number(row.tx_point), number(row.balance), copy_field(row.service_user_id),
            copy_field(row.user_id), copy_field(row.user_name), copy_field(jsonutil.dumps(row.raw)),
        )
    )  # fmt: skip


def _old_copy(member_id: int, rows) -> str:
    counter, lines = identity.OccurrenceCounter(), []
    for row in (UseHistory.from_wire(r) for r in rows):
        key = identity.row_key(row.raw, identity.USAGE_KEY)
        lines.append(_old_line(str(member_id), row, key, counter.next(key)))
    lines.append("")
    return "\n".join(lines)


def _variants() -> list[dict]:
    rows = []
    for field, values in (("txPoint", AMOUNTS), ("balance", AMOUNTS), ("itemCode", CODES), ("txType", CODES),
                          ("txDT", DATES), ("serviceUserID", TEXTS), ("userID", TEXTS), ("userName", TEXTS)):  # fmt: skip
        rows += [{**BASE, field: value} for value in values]
    rng = random.Random(11)
    for _ in range(3000):
        whole = rng.choice(["0", str(rng.randrange(1, 10**9))])
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 8)))
        amount = f"{whole}.{fraction}" if fraction or rng.random() < 0.1 else whole
        day = dt.datetime(2000, 1, 1) + dt.timedelta(seconds=rng.randrange(0, 30 * 365 * 86400))
        rows.append({**BASE, "txPoint": amount, "balance": rng.choice(AMOUNTS[:10]), "txDT": f"{day:%Y%m%d%H%M%S}",
                     "itemCode": rng.choice(CODES[:7]), "userName": rng.choice(TEXTS)})  # fmt: skip
    return rows + [dict(BASE), dict(BASE)]  # exact repeats get occurrences 1 and 2


def test_usage_key_is_the_generic_row_key():
    for row in _variants():
        assert identity.usage_key(row) == identity.row_key(row, identity.USAGE_KEY), row
    missing = {k: v for k, v in BASE.items() if k not in ("userName", "txPoint")}
    assert identity.usage_key(missing) == identity.row_key(missing, identity.USAGE_KEY)


def test_copy_text_is_what_the_typed_path_wrote():
    rows = _variants()
    assert prepare_usage_copy(42, rows, identity.OccurrenceCounter()) == _old_copy(42, rows)


# Korea's summer time: 1987 and 1988, from 02:00 (03:00 on the clock) in May to 03:00 in October.
DST_CHANGES = [dt.datetime(1987, 5, 10), dt.datetime(1987, 10, 11), dt.datetime(1988, 5, 8), dt.datetime(1988, 10, 9)]


def test_copy_text_around_every_dst_change_and_through_the_years():
    hours = itertools.chain(
        # Every half hour of the week around each change, where a wrong offset would show...
        *((change + dt.timedelta(days=-3, minutes=30 * n) for n in range(2 * 24 * 7)) for change in DST_CHANGES),
        # ...and an hour in five through both DST years and this one: every hour of the day, every month.
        (dt.datetime(1987, 1, 1) + dt.timedelta(hours=5 * n) for n in range(24 * 731 // 5)),
        (dt.datetime(2026, 1, 1) + dt.timedelta(hours=5 * n, minutes=30) for n in range(24 * 365 // 5)),
    )
    rows = [{**BASE, "txDT": f"{moment:%Y%m%d%H%M}{n % 60:02d}"} for n, moment in enumerate(hours)]
    text = prepare_usage_copy(1, rows, identity.OccurrenceCounter())
    assert text == _old_copy(1, rows)
    since_1900 = dataclasses.replace(LIMITS, earliest="19000101000000", latest="20991231235959")
    one_pass = screen_usage_copy(1, rows, identity.OccurrenceCounter(), since_1900)
    assert one_pass.refused == [] and one_pass.data.decode() == _undashed(text)


# -- screened and copied in one pass (the sync's usage path) ------------------------------

LIMITS = RowLimits.for_sync(Settings(), dt.date(2026, 11, 20))
ODD = [
    {**BASE, "userName": "nul\x00inside"}, {**BASE, "userID": "lone \ud800 surrogate"}, {**BASE, "\x00key": "v"},
    {**BASE, "extra": "nul \x00 in another field"}, {**BASE, "extra": {"nested": [1, "\\", None]}},
    {**BASE, "extra": "back\\slash", "userName": 'quote "q"'}, {**BASE, "userName": "tab\tin name"},
    {**BASE, "userName": "x" * 501}, {**BASE, "userName": "x" * 300, "userID": "y" * 300},
    {**BASE, "userName": "zero\u200bwidth"}, {**BASE, "txPoint": Decimal("12.5")}, {**BASE, "balance": 16427},
    {**BASE, "balance": "-1"}, {**BASE, "balance": "-0"}, {**BASE, "txPoint": "-0"}, {**BASE, "txPoint": "0.00001"},
    {**BASE, "balance": "10000000000"}, {**BASE, "balance": "9999999999.9999"}, {**BASE, "balance": "1,234.5"},
    {**BASE, "txPoint": float("nan")}, {**BASE, "txDT": "20261120"}, {**BASE, "txDT": "20230229120000"},
    {**BASE, "txDT": "20261120246000"}, {**BASE, "txDT": "20261120235960"}, {**BASE, "txDT": "19871011023000"},
    {**BASE, "txDT": "19991231235959"}, {**BASE, "txDT": "20261123000000"}, {**BASE, "txDT": "２0261120150000"},
    {**BASE, "itemCode": "121"}, {**BASE, "itemCode": 1000}, {**BASE, "txType": True}, {**BASE, "txType": -1},
    {k: v for k, v in BASE.items() if k != "serviceUserID"}, {**BASE, "userID": None}, {**BASE, "userID": 12},
    {f"k{n}": n for n in range(100)}, ["not", "a", "row"], None, {**BASE},
]  # fmt: skip


def _one_by_one(member_id: int, rows) -> tuple[str, list]:
    """screen_row then prepare_usage_copy, row by row, the key without its dashes."""
    kept, refused = [], []
    for row in rows:
        reason = screen_row("usage", row, LIMITS)
        (kept.append(row) if reason is None else refused.append((row, reason)))
    return _undashed(prepare_usage_copy(member_id, kept, identity.OccurrenceCounter())), refused


def _undashed(text: str) -> str:
    """The COPY text with its row keys as 32 hex digits (the same uuids)."""
    lines = (line.split("\t") for line in text.splitlines())
    return "".join("\t".join([f[0], f[1].replace("-", ""), *f[2:]]) + "\n" for f in lines)


def _in_one_pass(member_id: int, rows) -> tuple[str, list]:
    copy = screen_usage_copy(member_id, rows, identity.OccurrenceCounter(), LIMITS)
    assert copy.rows == copy.data.count(b"\n")
    return copy.data.decode(), copy.refused


@pytest.mark.parametrize("decode", ["orjson", "stdlib"])
def test_one_pass_is_screening_then_the_copy_text(decode):
    rows = [r for r in _variants() if not isinstance(r.get("txPoint"), Decimal) and not isinstance(
        r.get("balance"), Decimal)] + ODD  # fmt: skip
    body = json.dumps({"list": rows}, default=str, allow_nan=True).encode("utf-8", "surrogatepass")
    for wire in (jsonutil.loads, lambda b: json.loads(b.decode("utf-8", "surrogatepass"), parse_float=Decimal)):
        if (wire is jsonutil.loads) != (decode == "orjson"):
            continue
        ours, theirs = wire(body)["list"], wire(body)["list"]
        text, refused = _in_one_pass(42, ours)
        expected, expected_refused = _one_by_one(42, theirs)
        assert text == expected
        assert refused == expected_refused
        assert len(refused) > 20


def test_one_pass_numbers_repeats_across_pages_and_ways():
    """An exact repeat is numbered by one counter, whichever way each row went."""
    counter = identity.OccurrenceCounter()
    odd = {**BASE, "itemCode": str(BASE["itemCode"])}  # the same row as BASE, through the general way
    pages = [[dict(BASE), dict(odd)], [dict(BASE)], [dict(odd)]]
    lines = [screen_usage_copy(1, page, counter, LIMITS).data.decode() for page in pages]
    occurrences = [line.split("\t")[2] for text in lines for line in text.splitlines()]
    keys = {line.split("\t")[1] for text in lines for line in text.splitlines()}
    assert occurrences == ["0", "1", "2", "3"] and len(keys) == 1
