"""`ledger report month`: one workbook for the whole month. A summary sheet (one row per member,
built from the same statements `ledger report statement` prints), one sheet per member with its
statement and daily balance, and native Excel charts: daily balance and usage by service."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, text

from ledger.errors import UserInputError
from ledger.kst import KST
from ledger.reports.export import (
    DATE_FORMAT,
    FRACTION_FORMAT,
    WHOLE_FORMAT,
    Cells,
    atomic_path,
    safe_sheet_title,
)
from ledger.reports.labels import header
from ledger.reports.statement import Statement, monthly_statement, next_month

SUMMARY_COLUMNS = ["corp_num", "member_name", "opening_balance", "deposits_won", "deposits", "bonus_credits",
                   "usage_points", "refunds", "closing_balance", "open_discrepancies", "month_status"]  # fmt: skip
_TITLES = {"en": ("Summary", "Statement", "Daily balance", "Usage by service", "closed", "open"),
           "ko": ("요약", "명세", "일별 잔액", "서비스별 사용", "마감", "미마감")}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class WorkbookSummary:
    members: int
    charts: int


def summary_row(statement: Statement) -> list:
    a = lambda key: statement.amount(key, Decimal(0))  # noqa: E731
    return [statement.corp_num, statement.member_name, a("opening_balance"), statement.won("deposits") or Decimal(0),
            a("deposits"), a("bonus_credits"), a("usage_points"), a("refunds"), a("closing_balance"),
            a("open_discrepancies"), "closed" if statement.closed else "open"]  # fmt: skip


def daily_balances(engine: Engine, corp_num: str, month: dt.date, opening: Decimal) -> list[tuple[dt.date, Decimal]]:
    """The balance at the end of each Korean day of the month (carried over days without rows)."""
    start = dt.datetime.combine(month, dt.time(), tzinfo=KST)
    end = dt.datetime.combine(next_month(month), dt.time(), tzinfo=KST)
    with engine.connect() as conn:
        ends = dict(conn.execute(text(
            "SELECT DISTINCT ON (day) day, balance FROM (SELECT (u.tx_dt AT TIME ZONE 'Asia/Seoul')::date AS day, "
            "u.balance, u.tx_dt, u.id FROM usages u JOIN members m ON m.id = u.member_id "
            "WHERE m.corp_num = :c AND u.tx_dt >= :s AND u.tx_dt < :e) x ORDER BY day, tx_dt DESC, id DESC"),
            {"c": corp_num, "s": start, "e": end}).all())  # fmt: skip
    days, balance, day = [], opening, month
    while day < next_month(month):
        balance = ends.get(day, balance)
        days.append((day, balance))
        day += dt.timedelta(days=1)
    return days


def month_workbook(engine: Engine, month: dt.date, out: Path, lang: str, *, corp_nums: list[str] | None = None
                   ) -> WorkbookSummary:  # fmt: skip
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, LineChart, Reference
    from openpyxl.styles import Font

    month = month.replace(day=1)
    with engine.connect() as conn:
        if corp_nums:
            found = set(conn.execute(text("SELECT corp_num FROM members WHERE corp_num = ANY(:c)"),
                                     {"c": corp_nums}).scalars())  # fmt: skip
            missing = sorted(set(corp_nums) - found)
            if missing:
                raise UserInputError(f"--member: {', '.join(missing)} is not a member")
            members = sorted(found)
        else:
            members = list(conn.execute(text("SELECT corp_num FROM members WHERE active ORDER BY corp_num")).scalars())
    if not members:
        raise UserInputError("no members to report on (add them with `ledger members add`)")
    summary_title, statement_title, daily_title, usage_title, closed, open_ = _TITLES[lang]
    book = Workbook()
    cells = Cells()
    bold = Font(bold=True)
    summary = book.active
    summary.title = summary_title
    summary.append([cells.text(summary, header(c, lang)) for c in SUMMARY_COLUMNS])
    for cell in summary[1]:
        cell.font = bold
    summary.freeze_panes = "A2"
    charts = 0
    for corp_num in members:
        statement = monthly_statement(engine, corp_num, month)
        row = summary_row(statement)
        row[-1] = closed if statement.closed else open_
        summary.append(cells.row(summary, row))

        sheet = book.create_sheet(safe_sheet_title(f"{corp_num} {statement.member_name or ''}", book.sheetnames))
        sheet.append([cells.text(sheet, f"{statement_title} {month:%Y-%m}"), cells.text(sheet, corp_num),
                      cells.text(sheet, statement.member_name or ""),
                      cells.text(sheet, closed if statement.closed else open_)])  # fmt: skip
        sheet.append([cells.text(sheet, header(c, lang)) for c in ("line", "amount", "won", "status")])
        for cell in sheet[2]:
            cell.font = bold
        usage_rows = []
        for line in statement.lines:
            sheet.append(cells.row(sheet, [line.label_ko if lang == "ko" else line.label_en, line.amount, line.won,
                                           line.status]))  # fmt: skip
            if line.key.startswith("usage:"):
                usage_rows.append(sheet.max_row)
        # The daily balance table sits to the right of the statement, so both charts read the sheet.
        sheet.cell(row=2, column=7, value=header("day", lang)).font = bold
        sheet.cell(row=2, column=8, value=header("daily_balance", lang)).font = bold
        days = daily_balances(engine, corp_num, month, statement.amount("opening_balance", Decimal(0)))
        for n, (day, balance) in enumerate(days, 3):
            sheet.cell(row=n, column=7, value=day).number_format = DATE_FORMAT
            sheet.cell(row=n, column=8, value=balance).number_format = (
                WHOLE_FORMAT if balance == balance.to_integral_value() else FRACTION_FORMAT
            )
        line_chart = LineChart()
        line_chart.title = f"{daily_title} {corp_num}"
        line_chart.y_axis.title = header("balance", lang)
        line_chart.add_data(Reference(sheet, min_col=8, min_row=2, max_row=2 + len(days)), titles_from_data=True)
        line_chart.set_categories(Reference(sheet, min_col=7, min_row=3, max_row=2 + len(days)))
        line_chart.height, line_chart.width = 8, 18
        sheet.add_chart(line_chart, "J2")
        charts += 1
        if usage_rows:
            bar = BarChart()
            bar.type = "bar"
            bar.title = f"{usage_title} {corp_num}"
            bar.add_data(
                Reference(sheet, min_col=2, min_row=usage_rows[0], max_row=usage_rows[-1]), titles_from_data=False
            )
            bar.set_categories(Reference(sheet, min_col=1, min_row=usage_rows[0], max_row=usage_rows[-1]))
            bar.legend = None
            bar.height, bar.width = 8, 18
            sheet.add_chart(bar, "J20")
            charts += 1
        sheet.column_dimensions["A"].width = 44
        sheet.column_dimensions["G"].width = 12
    summary.column_dimensions["B"].width = 24
    with atomic_path(out) as temporary:
        book.save(temporary)
    return WorkbookSummary(len(members), charts)
