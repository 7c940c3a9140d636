"""Exports of tables and views: exact decimals, Korean-time dates, CSV or XLSX (or JSON)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, text

from ledger.errors import UserInputError
from ledger.kst import KST
from ledger.reports.labels import header

# What may be exported, and the column its --from/--to filter on.
EXPORTABLE = {
    "usages": "tx_dt", "payments": "reg_dt", "refunds": "req_dt", "state_changes": "seen_at",
    "balance_snapshots": "taken_at", "discrepancies": "first_seen_at", "sync_runs": "started_at",
    "tracked_items": "requested_at", "v_usage_daily": "day", "v_monthly_usage_by_service": "month",
    "v_monthly_statements": "month", "v_pending_items": "requested_at", "v_open_discrepancies": "first_seen_at",
}  # fmt: skip
_WITH_MEMBER = {"usages", "payments", "refunds", "balance_snapshots", "discrepancies", "sync_runs", "tracked_items"}
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
POINTS_FORMAT = "#,##0.####"


class ExportError(UserInputError):
    pass


def fetch(engine: Engine, name: str, start: dt.date | None, end: dt.date | None) -> tuple[list[str], list[tuple]]:
    if name not in EXPORTABLE:
        raise ExportError(f"TABLE_OR_VIEW: {name!r} cannot be exported; choose one of {', '.join(sorted(EXPORTABLE))}")
    column = EXPORTABLE[name]
    source = (
        f"(SELECT m.corp_num, t.* FROM {name} t JOIN members m ON m.id = t.member_id)" if name in _WITH_MEMBER else name
    )
    with engine.connect() as conn:
        kind = conn.execute(
            text("SELECT data_type FROM information_schema.columns WHERE table_name = :t AND column_name = :c"),
            {"t": name, "c": column},
        ).scalar()
        day = f"({column} AT TIME ZONE 'Asia/Seoul')::date" if kind == "timestamp with time zone" else f"{column}::date"
        where, params = [], {}
        if start:
            where.append(f"{day} >= :start")
            params["start"] = start
        if end:
            where.append(f"{day} <= :end")
            params["end"] = end
        query = (
            f"SELECT * FROM {source} AS x" + (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY {column}"
        )
        result = conn.execute(text(query), params)
        columns = [c for c in result.keys() if c != "member_id"]
        rows = [tuple(r._mapping[c] for c in columns) for r in result]
    return columns, rows


def plain(value):
    """A value as accountants read it: Korean local time, exact decimals, JSON for documents."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(KST).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def to_csv(columns: list[str], rows: list[tuple], lang: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([header(c, lang) for c in columns])
    for row in rows:
        writer.writerow(["" if v is None else plain(v) for v in row])
    return out.getvalue()


def to_xlsx(columns: list[str], rows: list[tuple], lang: str, path: Path, title: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append([header(c, lang) for c in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                value = value.astimezone(KST).replace(tzinfo=None)  # Excel has no time zones: Korean time
            elif isinstance(value, dict | list):
                value = json.dumps(value, ensure_ascii=False)
            cells.append(value)
        sheet.append(cells)
        for cell, value in zip(sheet[sheet.max_row], cells, strict=True):
            if isinstance(value, Decimal):
                cell.number_format = POINTS_FORMAT
            elif isinstance(value, dt.datetime):
                cell.number_format = TIME_FORMAT
            elif isinstance(value, dt.date):
                cell.number_format = DATE_FORMAT
    sheet.freeze_panes = "A2"
    book.save(path)


def to_json(columns: list[str], rows: list[tuple]) -> str:
    return json.dumps(
        [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in rows], ensure_ascii=False, indent=2
    )
