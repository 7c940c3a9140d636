"""Exports of tables and views: exact decimals, Korean-time dates, CSV, XLSX or JSON.

Rows stream from a server-side cursor into the file, so memory stays flat whatever the row
count (openpyxl's write-only mode for XLSX). Cells are safe to open: text that a spreadsheet
would take for a formula (OWASP: it begins with =, +, -, @, tab or CR) gets a leading apostrophe
in CSV, and XLSX cells are always typed values, never formulas; control characters that XLSX
cannot hold become U+FFFD in XLSX rather than crashing the export (CSV and JSON keep them).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from copy import copy
from decimal import Decimal
from pathlib import Path
from typing import IO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from sqlalchemy import Engine, text

from ledger.errors import UserInputError
from ledger.kst import KST
from ledger.reports.labels import header

# What may be exported, and the column its --from/--to filter on (None: no date to filter on).
EXPORTABLE = {
    "usages": "tx_dt", "payments": "reg_dt", "refunds": "req_dt", "state_changes": "seen_at",
    "balance_snapshots": "taken_at", "discrepancies": "first_seen_at", "sync_runs": "started_at",
    "tracked_items": "requested_at", "v_usage_daily": "day", "v_monthly_usage_by_service": "month",
    "v_monthly_statements": "month", "v_pending_items": "requested_at", "v_open_discrepancies": "first_seen_at",
    "v_deposits": "month", "month_closes": "month", "item_codes": None, "tx_types": None, "state_codes": None,
}  # fmt: skip
_WITH_MEMBER = {"usages", "payments", "refunds", "balance_snapshots", "discrepancies", "sync_runs", "tracked_items",
                "month_closes"}  # fmt: skip
# Usage rows carry their service's name from item_codes, as statements and views do.
_SERVICE = (
    ", CASE WHEN coalesce(t.item_code, 0) <> 0 "
    "THEN coalesce(i.name_ko, '알 수 없는 서비스 (' || t.item_code || ')') END AS service"
)
_ITEM_JOIN = " LEFT JOIN item_codes i ON i.code = t.item_code"
_ORDER = {"item_codes": "code", "tx_types": "code", "state_codes": "kind, code"}
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
WHOLE_FORMAT = "#,##0"  # whole numbers: thousands separators, no trailing dot
FRACTION_FORMAT = "#,##0.0#########"  # exact decimals keep their digits
POINTS_FORMAT = WHOLE_FORMAT  # kept for callers of the earlier name
EXCEL_MAX_ROWS = 1_048_576  # rows per sheet, the header included
ENCODINGS = ("utf-8", "cp949")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What XLSX (XML 1.0) cannot hold: C0 controls except tab, LF and CR.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_STREAM_ROWS = 2000


class ExportError(UserInputError):
    pass


def clean_text(value: str) -> str:
    """Control characters XLSX cannot hold become U+FFFD, so an export never crashes."""
    return _ILLEGAL.sub("\ufffd", value)


def neutralise(value: str) -> str:
    """OWASP CSV injection: text a spreadsheet would run as a formula is written as text."""
    return "'" + value if value.startswith(_FORMULA_START) else value


@contextlib.contextmanager
def rows_of(engine: Engine, name: str, start: dt.date | None, end: dt.date | None
            ) -> Iterator[tuple[list[str], Iterator[tuple]]]:  # fmt: skip
    """The columns and a streaming iterator over the rows (a server-side cursor)."""
    if name not in EXPORTABLE:
        raise ExportError(f"TABLE_OR_VIEW: {name!r} cannot be exported; choose one of {', '.join(sorted(EXPORTABLE))}")
    column = EXPORTABLE[name]
    if column is None and (start or end):
        raise ExportError(f"--from/--to: {name} has no date to filter on")
    usage = name == "usages"
    source = (
        f"(SELECT m.corp_num, t.*{_SERVICE if usage else ''} FROM {name} t "
        f"LEFT JOIN members m ON m.id = t.member_id{_ITEM_JOIN if usage else ''})"
        if name in _WITH_MEMBER
        else name
    )
    with engine.connect() as conn:
        where, params = [], {}
        if column:
            kind = conn.execute(
                text("SELECT data_type FROM information_schema.columns WHERE table_name = :t AND column_name = :c"),
                {"t": name, "c": column},
            ).scalar()
            day = (
                f"({column} AT TIME ZONE 'Asia/Seoul')::date"
                if kind == "timestamp with time zone"
                else f"{column}::date"
            )
            if start:
                where.append(f"{day} >= :start")
                params["start"] = start
            if end:
                where.append(f"{day} <= :end")
                params["end"] = end
        order = _ORDER.get(name) or (f"{column}, id" if name in _WITH_MEMBER or name == "state_changes" else column)
        query = (
            f"SELECT * FROM {source} AS x" + (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY {order}"
        )
        result = conn.execution_options(stream_results=True, yield_per=_STREAM_ROWS).execute(text(query), params)
        keys = list(result.keys())
        keep = [i for i, c in enumerate(keys) if c != "member_id"]
        columns = [keys[i] for i in keep]
        yield columns, (tuple(r[i] for i in keep) for r in result)


def fetch(engine: Engine, name: str, start: dt.date | None, end: dt.date | None) -> tuple[list[str], list[tuple]]:
    """All rows in memory: for small tables and tests; exports use rows_of()."""
    with rows_of(engine, name, start, end) as (columns, rows):
        return columns, list(rows)


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
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


# -- CSV -----------------------------------------------------------------------------------


def _csv_cell(value) -> str:
    # CSV can hold any character, so text stays exactly as stored; only formulas are defused.
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, dict | list):
        return neutralise(plain(value))
    return str(plain(value))


def write_csv(columns: list[str], rows: Iterable[tuple], lang: str, stream: IO[str]) -> int:
    writer = csv.writer(stream)
    writer.writerow([header(c, lang) for c in columns])
    count = 0
    for count, row in enumerate(rows, 1):  # noqa: B007 - the count is the result
        try:
            writer.writerow([_csv_cell(v) for v in row])
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end]
            raise ExportError(
                f"--encoding: row {count} holds {bad!r}, which {exc.encoding} cannot write; use --encoding utf-8"
            ) from None
    return count


# -- JSON ----------------------------------------------------------------------------------


def write_json(columns: list[str], rows: Iterable[tuple], stream: IO[str]) -> int:
    stream.write("[")
    count = 0
    for count, row in enumerate(rows, 1):  # noqa: B007
        stream.write("\n  " if count == 1 else ",\n  ")
        stream.write(json.dumps({c: plain(v) for c, v in zip(columns, row, strict=True)}, ensure_ascii=False))
    stream.write("\n]\n" if count else "]\n")
    return count


# -- XLSX ----------------------------------------------------------------------------------

_BAD_TITLE = re.compile(r"[\[\]:*?/\\\x00-\x1f]")


def safe_sheet_title(title: str, taken: Iterable[str] = ()) -> str:
    """A sheet title Excel accepts: no []:*?/\\, no apostrophe at either end, at most 31
    characters, not empty, and unique in the workbook (case-insensitively)."""
    base = _BAD_TITLE.sub("_", title).strip().strip("'").strip() or "Sheet"
    used = {t.lower() for t in taken}
    candidate, n = base[:31], 1
    while candidate.lower() in used or candidate.lower() == "history":  # 'History' is reserved by Excel
        n += 1
        suffix = f" ({n})"
        candidate = base[: 31 - len(suffix)] + suffix
    return candidate


class Cells:
    """Typed cells for one workbook: numbers with thousands separators (no trailing dot when
    whole), Korean-time dates, text that is never a formula or an error value."""

    def __init__(self) -> None:

        self._new = WriteOnlyCell  # a plain Cell bound to its sheet; works in both workbook modes
        self._styles: dict[str, object] = {}

    def _styled(self, sheet, value, number_format: str):
        style = self._styles.get(number_format)
        if style is None:
            template = self._new(sheet, 0)
            template.number_format = number_format
            style = self._styles[number_format] = template._style
        cell = self._new(sheet, value)
        cell._style = copy(style)
        return cell

    def text(self, sheet, value: str):
        cell = self._new(sheet, clean_text(value))
        cell.data_type = "s"  # whatever it starts with, it is text
        return cell

    def cell(self, sheet, value):
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Decimal):
            return self._styled(sheet, value, WHOLE_FORMAT if value == value.to_integral_value() else FRACTION_FORMAT)
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(KST).replace(tzinfo=None)  # Excel has no time zones: Korean time
            return self._styled(sheet, value, TIME_FORMAT)
        if isinstance(value, dt.date):
            return self._styled(sheet, value, DATE_FORMAT)
        value = clean_text(value if isinstance(value, str) else str(plain(value)))
        if value.startswith(("=", "#")):  # openpyxl would store these as a formula or an error value
            return self.text(sheet, value)
        return value

    def row(self, sheet, values: Iterable) -> list:
        return [self.cell(sheet, v) for v in values]


class SheetWriter:
    """Appends typed rows to write-only sheets, starting a new sheet when one is full."""

    def __init__(self, book, title: str, headers: list[str], *, rows_per_sheet: int = EXCEL_MAX_ROWS) -> None:

        self.book, self.title, self.headers = book, title, headers
        self.rows_per_sheet = rows_per_sheet
        self.sheets: list = []
        self.cells = Cells()
        self._bold = Font(bold=True)
        self._rows_in_sheet = rows_per_sheet  # forces a first sheet
        self.rows = 0

    def _new_sheet(self) -> None:
        title = self.title if not self.sheets else f"{self.title} ({len(self.sheets) + 1})"
        sheet = self.book.create_sheet(safe_sheet_title(title, self.book.sheetnames))
        sheet.freeze_panes = "A2"
        cells = [self.cells.text(sheet, str(name)) for name in self.headers]
        for cell in cells:
            cell.font = self._bold
        sheet.append(cells)
        self.sheets.append(sheet)
        self._rows_in_sheet = 1

    def append(self, row: Iterable) -> None:
        if self._rows_in_sheet >= self.rows_per_sheet:
            self._new_sheet()
        sheet = self.sheets[-1]
        sheet.append(self.cells.row(sheet, row))
        self._rows_in_sheet += 1
        self.rows += 1

    def finish(self) -> None:
        if not self.sheets:
            self._new_sheet()


def write_xlsx(columns: list[str], rows: Iterable[tuple], lang: str, path: Path, title: str, *,
               rows_per_sheet: int = EXCEL_MAX_ROWS) -> int:  # fmt: skip

    book = Workbook(write_only=True)
    writer = SheetWriter(book, title, [header(c, lang) for c in columns], rows_per_sheet=rows_per_sheet)
    for row in rows:
        writer.append(row)
    writer.finish()
    with atomic_path(path) as temporary:
        book.save(temporary)
    return writer.rows


# -- files -----------------------------------------------------------------------------------


def current_umask() -> int:
    """The process's umask (Linux reports it in /proc without changing it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed over it only when the block succeeds: a failed
    export leaves no half-written file. The file gets the permissions any new file gets (the
    umask decides: 0644 by default), not mkstemp's private 0600, so colleagues on a shared
    drive can open it."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or ".")
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def csv_encoding(encoding: str) -> str:
    """UTF-8 with a BOM (so Excel reads Korean), or CP949 as Korean Excel writes it."""
    if encoding not in ENCODINGS:
        raise ExportError(f"--encoding: one of {', '.join(ENCODINGS)}, got {encoding!r}")
    return "utf-8-sig" if encoding == "utf-8" else "cp949"


def write_file(columns: list[str], rows: Iterable[tuple], fmt: str, lang: str, path: Path, title: str,
               encoding: str = "utf-8") -> int:  # fmt: skip
    if fmt == "xlsx":
        return write_xlsx(columns, rows, lang, path, title)
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding=csv_encoding(encoding) if fmt == "csv" else "utf-8", newline="") as stream:
            count = write_csv(columns, rows, lang, stream) if fmt == "csv" else write_json(columns, rows, stream)
    return count


def write_stream(columns: list[str], rows: Iterable[tuple], fmt: str, lang: str, binary: IO[bytes],
                 encoding: str = "utf-8") -> int:  # fmt: skip
    """CSV or JSON to a byte stream such as stdout (no BOM there: it would land mid-pipe)."""
    codec = ("utf-8" if encoding == "utf-8" else csv_encoding(encoding)) if fmt == "csv" else "utf-8"
    stream = io.TextIOWrapper(binary, encoding=codec, newline="", write_through=False)
    try:
        return write_csv(columns, rows, lang, stream) if fmt == "csv" else write_json(columns, rows, stream)
    finally:
        stream.flush()
        stream.detach()
