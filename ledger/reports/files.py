"""A member's statement as a file for people: XLSX (the month workbook's statement sheet, with
its charts) or PDF (거래명세서), both laid out from the same StatementDocument."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from openpyxl import Workbook
from sqlalchemy import Engine

from ledger.kst import now_kst, today_kst
from ledger.reports.export import atomic_path, safe_sheet_title
from ledger.reports.layout import StatementDocument, format_time
from ledger.reports.sheets import statement_sheet
from ledger.reports.statement import Statement, _member, check_month, data_months
from ledger.reports.workbook import documents


def statement_document_of(engine: Engine, corp_num: str, month: dt.date, lang: str, *, today: dt.date | None = None,
                          now: dt.datetime | None = None) -> tuple[Statement, StatementDocument]:  # fmt: skip
    """The statement of one member and month (refused outside its data), ready to lay out."""
    month = month.replace(day=1)
    with engine.connect() as conn:
        member = _member(conn, corp_num)
        first, last = data_months(conn, [member.id])[member.id]
        check_month(month, first, last, corp_num, today or today_kst())
        _, statement, doc = next(documents(conn, [[member]], month, lang, now or now_kst()))
    return statement, doc


def write_statement(engine: Engine, corp_num: str, month: dt.date, fmt: str, out: Path, lang: str, *,
                    font: Path | None = None, now: dt.datetime | None = None) -> Statement:  # fmt: skip
    """Write the statement to `out` as xlsx or pdf (atomically, with the umask's permissions)."""
    if fmt == "pdf":
        from ledger.reports.pdf import fonts, statement_pdf  # lazy: reportlab is loaded only when a PDF is asked for

        fonts(font)  # a missing font stops here, before any work
    now = now or now_kst()
    statement, doc = statement_document_of(engine, corp_num, month, lang, now=now)
    with atomic_path(out) as temporary:
        if fmt == "pdf":
            temporary.write_bytes(statement_pdf(doc, format_time(now), font))
        else:
            book = Workbook(write_only=True)
            statement_sheet(book, doc, safe_sheet_title(f"{doc.corp_num} {doc.member_name}"), format_time(now))
            book.save(temporary)
    return statement
