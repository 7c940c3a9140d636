"""`ledger report month`: the month workbook and the PDF month pack, at any number of members.

The workbook holds a summary sheet (one row per member, built from the same statements
`ledger report statement` prints, with a column for every movement and a check column that
is zero on every row), a sheet listing the members flagged for review and why, and a statement
sheet (with its charts) only for the members asked for (`--member`) or flagged: open
discrepancies, a closing balance below the member's threshold, the largest users of the month.

Members are read in batches (a few statements per batch, not per member) and the summary rows
wait in a temporary file between the two passes (the first finds the column widths, the flags
and any row that does not add up; the second writes), so memory stays flat as members grow.
A workbook that does not add up is never written: the command names the members.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import heapq
import pickle
import tempfile
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from sqlalchemy import Connection, Engine, Row, text

from ledger.errors import UserInputError
from ledger.history.codes import load_service_names
from ledger.kst import KST, now_kst, today_kst
from ledger.reports.export import atomic_path, safe_sheet_title
from ledger.reports.labels import status, summary_header, words
from ledger.reports.layout import (
    COUNT_FORMAT,
    MAX_DECIMALS,
    POINT_DECIMALS,
    WON_FORMAT,
    decimals_of,
    display_width,
    format_corp_num,
    format_points,
    format_time,
    format_whole,
    point_format,
    statement_document,
)
from ledger.reports.sheets import (
    BOLD_SCALE,
    Style,
    header_width,
    needs_wrap,
    prepare,
    print_setup,
    row_height,
    statement_sheet,
    width_of,
)
from ledger.reports.statement import Member, Statement, StatementError, check_month, month_statements, next_month

BATCH = 500  # members read at once
ZERO = Decimal(0)

TEXT, POINTS, WON, COUNT = "text", "points", "won", "count"
SUMMARY_COLUMNS = [
    ("corp_num", TEXT), ("member_name", TEXT), ("month_status", TEXT), ("opening_balance", POINTS),
    ("prior_period_adjustment", POINTS), ("deposits_won", WON), ("deposits", POINTS), ("bonus_credits", POINTS),
    ("usage_points", POINTS), ("refunds", POINTS), ("adjustments", POINTS), ("unclassified_points", POINTS),
    ("closing_balance", POINTS), ("check", POINTS), ("pending_deposits_won", WON), ("cancelled_deposits_won", WON),
    ("transactions", COUNT), ("open_discrepancies", COUNT),
]  # fmt: skip
# closing = opening + prior-period adjustment + deposits + bonus - usage - refunds + adjustments + unclassified
SIGNS = {"opening_balance": 1, "prior_period_adjustment": 1, "deposits": 1, "bonus_credits": 1, "usage_points": -1,
         "refunds": -1, "adjustments": 1, "unclassified_points": 1}  # fmt: skip


class WorkbookError(UserInputError):
    pass


@dataclasses.dataclass(frozen=True)
class Flagged:
    corp_num: str
    name: str | None
    reasons: tuple[str, ...]
    sheet: bool = False


@dataclasses.dataclass
class MonthReport:
    """What was written: counts for the command's line, every flagged member for --json."""

    path: Path
    members: int = 0
    sheets: int = 0
    charts: int = 0
    statements: int = 0  # PDFs in a pack
    without_rows: int = 0  # members with no row by the end of the month: not in the report
    sheet_limit_reached: bool = False
    flagged: list[Flagged] = dataclasses.field(default_factory=list)
    sheet_members: list[str] = dataclasses.field(default_factory=list)


def summary_values(statement: Statement) -> dict:
    """One summary row: the statement's own figures, and the check (zero when it adds up)."""
    a = lambda key: statement.amount(key, ZERO)  # noqa: E731
    values = {
        "corp_num": statement.corp_num, "member_name": statement.member_name or "",
        "month_status": "closed" if statement.closed else "open",
        **{key: Decimal(a(key) or ZERO) for key in SIGNS}, "closing_balance": Decimal(a("closing_balance") or ZERO),
        "deposits_won": statement.won("deposits") or ZERO, "pending_deposits_won": statement.won("pending_deposits") or ZERO,
        "cancelled_deposits_won": statement.won("cancelled_deposits") or ZERO,
        "transactions": int(a("transactions")), "open_discrepancies": int(a("open_discrepancies")),
    }  # fmt: skip
    values["check"] = check_of(values)
    return values


def check_of(values: dict) -> Decimal:
    """closing - (opening + movements) on a summary row."""
    return values["closing_balance"] - sum((sign * values[key] for key, sign in SIGNS.items()), ZERO)


def assert_adds_up(rows: list[dict], month: dt.date) -> None:
    """The identity every summary row must satisfy before a file is written."""
    wrong = [r for r in rows if check_of(r) != 0 or r["check"] != 0]
    if wrong:
        named = ", ".join(f"{r['corp_num']} ({r['member_name'] or '-'}) by {check_of(r):+} points" for r in wrong[:5])
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        raise WorkbookError(
            f"{month:%Y-%m} does not add up (closing - opening - movements is not zero) for {named}{more}: "
            f"nothing was written; see `ledger reconcile --month {month:%Y-%m}`, or leave them out with --member"
        )


# -- reading members in batches -------------------------------------------------------------


_DATA_RANGE = """
    CROSS JOIN LATERAL (
        SELECT date_trunc('month', least(
                   (SELECT min(tx_dt) FROM usages WHERE member_id = m.id),
                   (SELECT min(reg_dt) FROM payments WHERE member_id = m.id),
                   (SELECT min(req_dt) FROM refunds WHERE member_id = m.id)) AT TIME ZONE 'Asia/Seoul')::date
                   AS first_month,
               date_trunc('month', (SELECT max(tx_dt) FROM usages WHERE member_id = m.id) AT TIME ZONE 'Asia/Seoul')::date
                   AS last_month
    ) r
"""
_MEMBERS = "SELECT m.id, m.corp_num, m.name, m.low_balance_threshold AS threshold, r.first_month, r.last_month " \
           "FROM members m " + _DATA_RANGE  # fmt: skip
# The active members' data range, in one pass that keeps nothing per member.
_ACTIVE_RANGE = text(
    "SELECT count(*) AS members, min(r.first_month) AS first_month, max(r.last_month) AS last_month, "
    "count(*) FILTER (WHERE r.first_month IS NULL OR r.first_month > :m) AS without_rows "
    "FROM members m " + _DATA_RANGE + " WHERE m.active"
)
# A page of active members after a corp_num: memory holds one batch, however many members.
_ACTIVE_PAGE = text(_MEMBERS + " WHERE m.active AND m.corp_num > :after ORDER BY m.corp_num LIMIT :n")


def check_report_month(conn: Connection, month: dt.date, corp_nums: list[str] | None, today: dt.date | None = None
                       ) -> int:  # fmt: skip
    """Refuse a month outside the data (of the asked members, else of the ledger); returns how
    many members have no row by the month's end (they are not in the report)."""
    today = today or today_kst()
    if corp_nums:
        rows = conn.execute(text(_MEMBERS + " WHERE m.corp_num = ANY(:c)"), {"c": list(corp_nums)}).all()
        missing = sorted(set(corp_nums) - {r.corp_num for r in rows})
        if missing:
            raise WorkbookError(f"--member: {', '.join(missing)} is not a member")
        for row in rows:  # an asked member must have the month
            check_month(month, row.first_month, row.last_month, row.corp_num, today)
        return 0
    found = conn.execute(_ACTIVE_RANGE, {"m": month}).one()
    if not found.members:
        raise WorkbookError("no members to report on (add them with `ledger members add`)")
    check_month(month, found.first_month, found.last_month, "the ledger", today)
    return found.without_rows


def member_batches(conn: Connection, month: dt.date, corp_nums: list[str] | None) -> Iterator[list[Row]]:
    """The members the month's report covers (asked ones, else every active one with a row by
    the month's end), a batch at a time, in corp_num order."""
    if corp_nums:
        rows = conn.execute(text(_MEMBERS + " WHERE m.corp_num = ANY(:c) ORDER BY m.corp_num"),
                            {"c": list(corp_nums)}).all()  # fmt: skip
        for first in range(0, len(rows), BATCH):
            yield rows[first : first + BATCH]
        return
    after = ""
    while True:
        page = conn.execute(_ACTIVE_PAGE, {"after": after, "n": BATCH}).all()
        if not page:
            return
        after = page[-1].corp_num
        covered = [r for r in page if r.first_month is not None and r.first_month <= month]
        if covered:
            yield covered


_DAILY = text(
    """
    SELECT DISTINCT ON (u.member_id, day) u.member_id, (u.tx_dt AT TIME ZONE 'Asia/Seoul')::date AS day, u.balance
    FROM usages u WHERE u.member_id = ANY(:ids) AND u.tx_dt >= :s AND u.tx_dt < :e
    ORDER BY u.member_id, day, u.tx_dt DESC, u.id DESC
    """
)


def daily_balances(conn: Connection, members: list[Member], month: dt.date, openings: dict[int, Decimal]
                   ) -> dict[int, list[tuple[dt.date, Decimal]]]:  # fmt: skip
    """Each member's balance at the end of each Korean day of the month (carried over days
    without rows), for a batch in one statement."""
    start = dt.datetime.combine(month, dt.time(), tzinfo=KST)
    end = dt.datetime.combine(next_month(month), dt.time(), tzinfo=KST)
    ends: dict[int, dict] = {}
    for row in conn.execute(_DAILY, {"ids": [m.id for m in members], "s": start, "e": end}):
        ends.setdefault(row.member_id, {})[row.day] = row.balance
    out = {}
    for member in members:
        days, balance, day, known = [], openings.get(member.id, ZERO), month, ends.get(member.id, {})
        while day < next_month(month):
            if known.get(day) is not None:  # a row without a balance carries the last one
                balance = known[day]
            days.append((day, balance))
            day += dt.timedelta(days=1)
        out[member.id] = days
    return out


def documents(conn: Connection, batches, month: dt.date, lang: str, produced_at: dt.datetime,
              reasons: dict | None = None):  # fmt: skip
    """(member, statement, document) for the members of each batch (rows with id, corp_num, name)."""
    names = load_service_names(conn)
    for batch in batches:
        members = [Member(r.id, r.corp_num, r.name) for r in batch]
        statements = month_statements(conn, members, month, names)
        openings = {m.id: Decimal(s.amount("opening_balance", ZERO) or ZERO) for m, s in zip(members, statements,
                                                                                            strict=True)}  # fmt: skip
        daily = daily_balances(conn, members, month, openings)
        for member, statement in zip(members, statements, strict=True):
            yield member, statement, statement_document(statement, lang, produced_at, daily[member.id],
                                                        list((reasons or {}).get(member.corp_num, ())))  # fmt: skip


# -- the first pass: rows, widths, flags ---------------------------------------------------------


@dataclasses.dataclass
class _Pass:
    """What the first pass learns without keeping the rows in memory."""

    spill: object
    rows: int = 0
    widths: dict = dataclasses.field(default_factory=dict)
    decimals: int = POINT_DECIMALS
    totals: dict = dataclasses.field(default_factory=dict)
    unbalanced: list = dataclasses.field(default_factory=list)
    reasons: dict = dataclasses.field(default_factory=dict)  # corp_num -> [reason]
    names: dict = dataclasses.field(default_factory=dict)  # of flagged members
    largest: list = dataclasses.field(default_factory=list)  # heap of (usage, corp_num)
    closed: int = 0


def _first_pass(conn: Connection, batches, month: dt.date, lang: str, default_threshold: Decimal, largest: int,
                spill) -> _Pass:  # fmt: skip
    w = words(lang)
    seen = _Pass(spill)
    names = load_service_names(conn)
    for batch in batches:
        members = [Member(r.id, r.corp_num, r.name) for r in batch]
        thresholds = {r.corp_num: r.threshold for r in batch}
        for statement in month_statements(conn, members, month, names):
            values = summary_values(statement)
            if values["check"] != 0:
                seen.unbalanced.append(values)
            seen.closed += statement.closed is not None
            pickle.dump(values, spill)
            seen.rows += 1
            for key, kind in SUMMARY_COLUMNS:
                value = values[key]
                if kind == POINTS:
                    seen.decimals = max(seen.decimals, decimals_of(value))
                    seen.totals[key] = seen.totals.get(key, ZERO) + value
                    # the integer part's width; the decimals are added once known
                    shown = f"{value:,.0f}"
                elif kind in (WON, COUNT):
                    seen.totals[key] = seen.totals.get(key, ZERO) + value
                    shown = format_whole(value)
                else:
                    shown = format_corp_num(value) if key == "corp_num" else status(value, lang) if key == "month_status" \
                        else value  # fmt: skip
                seen.widths[key] = max(seen.widths.get(key, 0), display_width(shown))
            reasons = []
            if values["open_discrepancies"]:
                reasons.append(w["discrepancies"].format(n=values["open_discrepancies"]))
            threshold = thresholds[statement.corp_num]
            threshold = default_threshold if threshold is None else threshold
            if values["closing_balance"] < threshold:
                reasons.append(w["below"].format(closing=format_points(values["closing_balance"], 1),
                                                 threshold=format_whole(threshold)))  # fmt: skip
            if reasons:
                seen.reasons[statement.corp_num] = reasons
                seen.names[statement.corp_num] = statement.member_name
            if largest and values["usage_points"] > 0:
                entry = (values["usage_points"], statement.corp_num, statement.member_name)
                if len(seen.largest) < largest:
                    heapq.heappush(seen.largest, entry)
                elif entry > seen.largest[0]:
                    heapq.heapreplace(seen.largest, entry)
    seen.decimals = min(MAX_DECIMALS, seen.decimals)
    for rank, (usage, corp_num, name) in enumerate(sorted(seen.largest, reverse=True), 1):
        seen.reasons.setdefault(corp_num, []).append(w["largest"].format(rank=rank, points=format_points(usage, 1)))
        seen.names.setdefault(corp_num, name)
    return seen


def _replay(spill) -> Iterator[dict]:
    spill.seek(0)
    while True:
        try:
            yield pickle.load(spill)
        except EOFError:
            return


# -- the second pass: writing ----------------------------------------------------------------


def _summary_sheet(book, seen: _Pass, month: dt.date, lang: str, produced: str, style: Style, counts: str) -> None:
    w = words(lang)
    sheet = book.create_sheet(w["summary_sheet"])
    points_format = point_format(seen.decimals)
    headers = [summary_header(key, lang) for key, _ in SUMMARY_COLUMNS]
    total_texts = {key: (format_points(value, seen.decimals) if kind == POINTS else format_whole(value))
                   for (key, kind) in SUMMARY_COLUMNS if (value := seen.totals.get(key)) is not None}  # fmt: skip
    letters = []

    for n, ((key, kind), head) in enumerate(zip(SUMMARY_COLUMNS, headers, strict=True), 1):
        content = seen.widths.get(key, 0) + (seen.decimals + 1 if kind == POINTS and seen.decimals else 0)
        width = max(content + 2, header_width(head), display_width(total_texts.get(key, "")) + 2,
                    display_width(w["total"]) + 2 if n == 1 else 0, 8)  # fmt: skip
        if key == "member_name":
            width = min(width, 40)  # longer names wrap
        letter = get_column_letter(n)
        sheet.column_dimensions[letter].width = width
        letters.append(letter)
    header_row = 6
    prepare(sheet, freeze=f"C{header_row + 1}")
    widths = [sheet.column_dimensions[letter].width for letter in letters]
    title = f"{w['summary']} {month:%Y-%m}"
    sheet.append([style.title(sheet, title)])
    sheet.append([style.text(sheet, f"{w['produced']}: {produced}")])
    sheet.append([style.text(sheet, counts)])
    sheet.append([style.text(sheet, w["adds_up"])])
    sheet.append([])
    sheet.row_dimensions[header_row].height = row_height(zip(headers, widths, strict=True), BOLD_SCALE)
    sheet.append([style.header(sheet, h, "left" if kind == TEXT else "right")
                  for h, (_, kind) in zip(headers, SUMMARY_COLUMNS, strict=True)])  # fmt: skip
    name_width = sheet.column_dimensions["B"].width
    rows = header_row
    for values in _replay(seen.spill):
        if (height := row_height([(values["member_name"], name_width)])) is not None:
            sheet.row_dimensions[rows + 1].height = height
        cells = []
        for key, kind in SUMMARY_COLUMNS:
            value = values[key]
            if kind == POINTS:
                cells.append(style.number(sheet, value, points_format))
            elif kind in (WON, COUNT):
                cells.append(style.number(sheet, value, WON_FORMAT if kind == WON else COUNT_FORMAT))
            elif key == "corp_num":
                cells.append(style.text(sheet, format_corp_num(value)))
            elif key == "month_status":
                cells.append(style.text(sheet, status(value, lang)))
            else:
                cells.append(style.text(sheet, value, wrap=needs_wrap(value, name_width)))
        sheet.append(cells)
        rows += 1
    totals = [style.text(sheet, w["total"], bold=True), None, None]
    for key, kind in SUMMARY_COLUMNS[3:]:
        value = seen.totals.get(key, ZERO)
        fmt = points_format if kind == POINTS else WON_FORMAT if kind == WON else COUNT_FORMAT
        totals.append(style.number(sheet, value, fmt, total=True))
    sheet.append(totals)
    rows += 1
    print_setup(sheet, landscape=True, title_rows=f"{header_row}:{header_row}", head=title, foot=produced,
                area=f"A1:{letters[-1]}{rows}")  # fmt: skip


def _flagged_sheet(book, flagged: list[Flagged], lang: str, month: dt.date, produced: str, style: Style) -> None:
    w = words(lang)
    sheet = book.create_sheet(w["flagged_sheet"])
    headers = [summary_header("corp_num", lang), summary_header("member_name", lang), w["why"], w["sheet"]]
    reasons = ["; ".join(f.reasons) for f in flagged]
    widths = [max(header_width(headers[0]), 14), max(width_of([f.name or "" for f in flagged]), header_width(headers[1]), 12),
              max(width_of(reasons), header_width(headers[2]), 20), max(header_width(headers[3]), 8)]  # fmt: skip
    for letter, width in zip("ABCD", widths, strict=True):
        sheet.column_dimensions[letter].width = width
    title = f"{w['flagged']} {month:%Y-%m}"
    prepare(sheet, freeze="A4")
    sheet.append([style.title(sheet, title)])
    sheet.append([])
    sheet.row_dimensions[3].height = row_height(zip(headers, widths, strict=True), BOLD_SCALE)
    sheet.append([style.header(sheet, h) for h in headers])
    for n, (f, why) in enumerate(zip(flagged, reasons, strict=True), 4):
        if (height := row_height([(f.name or "", widths[1]), (why, widths[2])])) is not None:
            sheet.row_dimensions[n].height = height
        sheet.append([style.text(sheet, value, wrap=True)  # top-aligned, beside reasons that wrap
                      for value in (format_corp_num(f.corp_num), f.name or "", why, w["yes"] if f.sheet else w["no"])])
    print_setup(sheet, landscape=True, title_rows="3:3", head=title, foot=produced, area=f"A1:D{len(flagged) + 3}")


def _plan(seen: _Pass, asked: list[str] | None, sheet_limit: int, lang: str) -> tuple[list[Flagged], list[str], bool]:
    """Who gets a statement sheet: the members asked for first, then the flagged (open
    discrepancies, below threshold, largest users), up to the limit."""
    w = words(lang)
    order = list(asked or [])
    for corp_num in seen.reasons:
        if corp_num not in order:
            order.append(corp_num)
    chosen = order[:sheet_limit]
    reached = len(order) > sheet_limit
    flagged = []
    for corp_num in sorted(set(seen.reasons) | set(asked or [])):
        reasons = list(seen.reasons.get(corp_num, []))
        if asked and corp_num in asked:
            reasons.insert(0, w["asked"])
        flagged.append(Flagged(corp_num, seen.names.get(corp_num), tuple(reasons), corp_num in chosen))
    return flagged, sorted(chosen), reached


@contextlib.contextmanager
def _spill() -> Iterator:
    with tempfile.TemporaryFile(prefix="ledger-month-") as spill:
        yield spill


def month_workbook(engine: Engine, month: dt.date, out: Path, lang: str, *, corp_nums: list[str] | None = None,
                   default_threshold: Decimal = Decimal(10000), largest: int = 5, sheet_limit: int = 100,
                   today: dt.date | None = None, now: dt.datetime | None = None) -> MonthReport:  # fmt: skip
    """Write the month workbook to `out` (atomically); refuse, naming the members, when a
    summary row does not add up."""
    month = month.replace(day=1)
    produced_at = now or now_kst()
    with engine.connect() as conn, _spill() as spill:
        without_rows, seen = _read(conn, month, lang, corp_nums, default_threshold, largest, spill, today)
        report = MonthReport(Path(out), members=seen.rows, without_rows=without_rows)
        flagged, chosen, report.sheet_limit_reached = _plan(seen, corp_nums, sheet_limit, lang)
        report.flagged, report.sheet_members = flagged, chosen
        with atomic_path(out) as temporary:
            report.sheets, report.charts = _write_book(conn, temporary, seen, flagged, chosen, month, lang,
                                                       produced_at)  # fmt: skip
    return report


def _read(conn, month, lang, corp_nums, default_threshold, largest, spill, today) -> tuple[int, _Pass]:
    without_rows = check_report_month(conn, month, corp_nums, today)
    seen = _first_pass(conn, member_batches(conn, month, corp_nums), month, lang, default_threshold, largest, spill)
    if not seen.rows:
        raise StatementError(f"--month: no member has rows by {month:%Y-%m}")
    assert_adds_up(seen.unbalanced, month)
    return without_rows, seen


def _counts(seen: _Pass, flagged: list[Flagged], lang: str) -> str:
    w = words(lang)
    return (f"{w['members']}: {seen.rows:,} · {status('closed', lang)}: {seen.closed:,} · "
            f"{w['flagged']}: {sum(1 for f in flagged if f.reasons):,}")  # fmt: skip


def _write_book(conn, path: Path, seen: _Pass, flagged: list[Flagged], chosen: list[str], month: dt.date,
                lang: str, produced_at: dt.datetime) -> tuple[int, int]:  # fmt: skip

    produced = format_time(produced_at)
    style = Style()
    book = Workbook(write_only=True)
    _summary_sheet(book, seen, month, lang, produced, style, _counts(seen, flagged, lang))
    _flagged_sheet(book, flagged, lang, month, produced, style)
    charts = 0
    batches = member_batches(conn, month, chosen) if chosen else iter(())
    for member, _, doc in documents(conn, batches, month, lang, produced_at, seen.reasons):
        title = safe_sheet_title(f"{member.corp_num} {member.name or ''}", book.sheetnames)
        charts += statement_sheet(book, doc, title, produced, style)
    book.save(path)
    return len(chosen), charts


def month_pack(engine: Engine, month: dt.date, out: Path, lang: str, *, corp_nums: list[str] | None = None,
               default_threshold: Decimal = Decimal(10000), largest: int = 5, sheet_limit: int = 100,
               font: Path | None = None, today: dt.date | None = None, now: dt.datetime | None = None) -> MonthReport:  # fmt: skip
    """A zip of one PDF statement per member (written one at a time: flat memory) and the
    month workbook (summary, flagged members and their sheets) as summary.xlsx."""
    from ledger.reports.pdf import fonts, statement_pdf  # lazy: reportlab is loaded only when a PDF is asked for

    fonts(font)  # a missing font stops here, before any work
    month = month.replace(day=1)
    produced_at = now or now_kst()
    produced = format_time(produced_at)
    with engine.connect() as conn, _spill() as spill:
        without_rows, seen = _read(conn, month, lang, corp_nums, default_threshold, largest, spill, today)
        report = MonthReport(Path(out), members=seen.rows, without_rows=without_rows)
        flagged, chosen, report.sheet_limit_reached = _plan(seen, corp_nums, sheet_limit, lang)
        report.flagged, report.sheet_members = flagged, chosen
        with atomic_path(out) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as pack:
            with tempfile.TemporaryDirectory(prefix="ledger-pack-") as folder:
                book = Path(folder) / "summary.xlsx"
                report.sheets, report.charts = _write_book(conn, book, seen, flagged, chosen, month, lang,
                                                           produced_at)  # fmt: skip
                pack.write(book, f"{month:%Y-%m}/summary.xlsx")
            batches = member_batches(conn, month, corp_nums)
            for member, _, doc in documents(conn, batches, month, lang, produced_at, seen.reasons):
                name = safe_sheet_title(member.name or "", ()).replace(" ", "_") if member.name else ""
                pack.writestr(f"{month:%Y-%m}/{member.corp_num}{'_' + name if name else ''}.pdf",
                              statement_pdf(doc, produced, font))  # fmt: skip
                report.statements += 1
    return report
