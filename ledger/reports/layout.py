"""What a statement shows, once, for every file it is written to: the title block, the lines
with their points, won and status in the file's language, the number of decimals each column
shows, the daily balances and the usage by service. The XLSX sheet (sheets.py) and the PDF
(pdf.py) both lay out a StatementDocument, so they carry the same figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from decimal import Decimal

from ledger.kst import KST
from ledger.reports.labels import status, words
from ledger.reports.statement import Statement, month_span

# Popbill's points carry one decimal (balances such as 16,427.4); a column shows more only
# when one of its amounts has more, so no amount is ever rounded.
POINT_DECIMALS = 1
MAX_DECIMALS = 10
WON_FORMAT = "#,##0"  # won are whole
COUNT_FORMAT = "#,##0"
COUNT_KEYS = frozenset({"transactions", "open_discrepancies"})
# Lines set in bold: where the month starts and ends.
STRONG_KEYS = frozenset({"opening_balance", "closing_balance"})


def decimals_of(value) -> int:
    if not isinstance(value, Decimal) or not value.is_finite():
        return 0
    return max(0, -value.normalize().as_tuple().exponent)


def point_decimals(values) -> int:
    """The decimals a points column shows: Popbill's one, or more if an amount has more."""
    return min(MAX_DECIMALS, max([POINT_DECIMALS, *(decimals_of(v) for v in values)]))


def point_format(decimals: int) -> str:
    return "#,##0." + "0" * decimals if decimals else "#,##0"


def format_points(value: Decimal | int | None, decimals: int) -> str:
    return "" if value is None else f"{Decimal(value):,.{decimals}f}"


def format_whole(value: Decimal | int | None) -> str:
    return "" if value is None else f"{Decimal(value):,.0f}"


def format_corp_num(corp_num: str) -> str:
    """A business number as Koreans write it: 123-45-67890."""
    return f"{corp_num[:3]}-{corp_num[3:5]}-{corp_num[5:]}" if len(corp_num) == 10 and corp_num.isdigit() else corp_num


def display_width(value: str) -> int:
    """Columns a text takes in a spreadsheet: Korean (and other wide) characters count double."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in value)


def format_time(moment: dt.datetime) -> str:
    return f"{moment.astimezone(KST):%Y-%m-%d %H:%M} KST"


@dataclasses.dataclass(frozen=True)
class DocumentRow:
    key: str
    label: str
    points: Decimal | int | None
    won: Decimal | None
    status: str | None
    count: bool = False  # a count, shown as a whole number
    strong: bool = False


@dataclasses.dataclass(frozen=True)
class StatementDocument:
    lang: str
    corp_num: str
    member_name: str
    month: dt.date
    title: str  # 거래명세서 (포인트) 2026-11
    fields: tuple[tuple[str, str], ...]  # the title block: (label, value)
    headers: tuple[str, str, str, str]  # line, points, won, status
    rows: tuple[DocumentRow, ...]
    decimals: int  # of the points column
    daily: tuple[tuple[dt.date, Decimal], ...]
    usage: tuple[tuple[str, Decimal], ...]  # (service label, points used)
    running_head: str  # for page headers: member and month

    def points_text(self, row: DocumentRow) -> str:
        return format_whole(row.points) if row.count else format_points(row.points, self.decimals)


def statement_document(statement: Statement, lang: str, produced_at: dt.datetime,
                       daily: list[tuple[dt.date, Decimal]] = (), reasons: list[str] = ()) -> StatementDocument:  # fmt: skip
    w = words(lang)
    name = statement.member_name or ""
    state = (
        "closed" if statement.closed else "open",
        w["closed_by"].format(by=statement.closed.by, at=format_time(statement.closed.at))
        if statement.closed else w["open_note"],
    )  # fmt: skip
    fields = [
        (w["member"], name or "-"),
        (w["corp_num"], format_corp_num(statement.corp_num)),
        (w["month"], f"{statement.month:%Y-%m} ({month_span(statement.month)})"),
        (w["status"], f"{status(state[0], lang)} ({state[1]})"),
        (w["produced"], format_time(produced_at)),
    ]
    if reasons:
        fields.append((w["reasons"], "; ".join(reasons)))
    rows = tuple(
        DocumentRow(line.key, line.label_ko if lang == "ko" else line.label_en,
                    int(line.amount) if line.key in COUNT_KEYS else line.amount, line.won, status(line.status, lang),
                    count=line.key in COUNT_KEYS, strong=line.key in STRONG_KEYS)
        for line in statement.lines
    )  # fmt: skip
    usage = tuple((row.label, Decimal(row.points)) for row in rows if row.key.startswith("usage:"))
    decimals = point_decimals([r.points for r in rows if not r.count] + [b for _, b in daily])
    title = f"{w['statement']} {statement.month:%Y-%m}"
    return StatementDocument(
        lang, statement.corp_num, name, statement.month, title, tuple(fields),
        (w["line"], w["amount"], w["won"], w["state"]),
        rows, decimals, tuple(daily), usage,
        f"{w['statement']} · {format_corp_num(statement.corp_num)} {name} · {statement.month:%Y-%m}",
    )  # fmt: skip
