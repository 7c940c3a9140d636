"""The usage COPY text is written straight from the wire rows: every column must be the very
text the typed path (UseHistory.from_wire, then str/isoformat of each value) gave before, and
the row key the generic row_key's, so rows synced by older code keep deduplicating."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from decimal import Decimal

from ledger import jsonutil
from ledger.history import identity
from ledger.history.writer import copy_field, prepare_usage_copy
from ledger.popbill.models import UseHistory

BASE = {"itemCode": 121, "txType": 2, "txPoint": "10", "balance": "990.5", "txDT": "20261120150000",
        "serviceUserID": "", "userID": "user01", "userName": "김하나"}  # fmt: skip

AMOUNTS = ["0", "7", "10", "990.5", "16427.40", "0.05", "0.0001", "007", "00.5", "0.000000", "1,234", "1.", "-5",
           "12345678901234", "٣", 0, 12, -3, Decimal("1.10"), Decimal("0.0000001"), Decimal("1E+3"), None, ""]  # fmt: skip
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
    assert prepare_usage_copy(1, rows, identity.OccurrenceCounter()) == _old_copy(1, rows)
