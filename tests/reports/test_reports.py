"""Statements equal totals computed independently from the simulator's ground truth; exports
read back to the same values; the reader role reads and cannot write."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
from collections import defaultdict
from decimal import Decimal

import psycopg
import pytest
from openpyxl import load_workbook
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from ledger.db.roles import RoleError, create_reader
from ledger.history.codes import load_service_names
from ledger.kst import today_kst
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient, codes
from ledger.reports import export as exporting
from ledger.reports.statement import StatementError, monthly_statement, previous_month
from ledger.simulator import Simulator
from ledger.sync.service import sync_all
from tests.cli.helpers import run
from tests.conftest import TEST_DATABASE_URL, client_settings, empty_ledger, small_config, unique_name

MEMBERS = ["1234567890", "2208112345"]
CATEGORY = {codes.TX_CHARGE: "deposits", codes.TX_BONUS: "bonus_credits", codes.TX_USE: "usage_points",
            codes.TX_REFUND: "refunds"}  # fmt: skip


@pytest.fixture(scope="module", params=[False, True], ids=["magnitudes", "signed"])
def synced(engine, request):
    """One synced ledger for the module (read-only tests), once for each txPoint convention:
    the simulator serving magnitudes, then serving debits as negative numbers."""
    with Simulator(small_config(history_days=100, usage_per_day=12, signed_tx_point=request.param)) as sim:
        with Session(engine) as session:
            for corp in MEMBERS:
                add_member(session, MemberInput(corp, name=f"상사 {corp[-4:]}"))
            session.commit()
        sim.set_balance(MEMBERS[1], "123456.7")  # an adjustment row, so that column is exercised
        with PopbillClient(client_settings(sim)) as client:
            assert all(r.status == "succeeded" for r in sync_all(engine, client, today=sim.world.today()))
        truth = {corp: sim.world.usage_truth(corp) for corp in MEMBERS}
        payments = {corp: sim.world.payments_truth(corp) for corp in MEMBERS}
    if request.param:
        assert any(Decimal(r["txPoint"]) < 0 for rows in truth.values() for r in rows)  # really signed
    else:
        assert all(Decimal(r["txPoint"]) >= 0 for rows in truth.values() for r in rows)
    yield engine, truth, payments
    empty_ledger(engine)


def once(request) -> None:
    """Tests whose code path does not depend on the txPoint convention run with magnitudes only."""
    if request.node.callspec.params["synced"]:
        pytest.skip("same code path as the magnitudes run; only statements depend on the convention")


def _month(stamp: str) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}"


def expected_months(rows: list[dict], payments: list[dict] = ()) -> dict[str, dict]:
    """Each month's statement, from the simulator's rows alone: points by txType (whatever the
    sign convention, the magnitude counts), won from the payment history by settleState."""
    months: dict[str, dict] = {}
    previous = Decimal(0)

    def month_of(month: str, opening: Decimal) -> dict:
        return months.setdefault(month, defaultdict(Decimal, opening_balance=opening, services=defaultdict(Decimal)))

    for row in rows:
        point = abs(Decimal(row["txPoint"]))
        m = month_of(_month(row["txDT"]), previous)
        if row["txType"] in CATEGORY:
            m[CATEGORY[row["txType"]]] += point
        elif row["txType"] in (codes.TX_ADJUST_UP, codes.TX_ADJUST_DOWN):
            m["adjustments"] += point if row["txType"] == codes.TX_ADJUST_UP else -point
        if row["txType"] == codes.TX_USE:
            m["services"][row["itemCode"]] += point
        m["closing_balance"] = previous = Decimal(row["balance"])
        m["transactions"] += 1
    for p in payments:
        status = {codes.SETTLE_DONE: "deposits", codes.SETTLE_PENDING: "pending_deposits",
                  codes.SETTLE_CANCELLED: "cancelled_deposits"}[p["settleState"]]  # fmt: skip
        stamp = p["regDT"] if p["settleState"] == codes.SETTLE_PENDING else p["stateDT"]
        if _month(stamp) in months:
            months[_month(stamp)][f"{status}:won"] += Decimal(p["settleCost"])
    return months


# Popbill's service codes, as the official SDKs name them in their token scopes.
POPBILL_SERVICES = {110: "전자세금계산서", 150: "문자 (SMS)", 151: "문자 (LMS)", 153: "카카오톡 (153)",
                    154: "카카오톡 (154)", 182: "예금주조회(성명)", 183: "예금주조회(실명)", 140: "현금영수증"}  # fmt: skip


def test_every_monthly_statement_equals_the_ground_truth(synced):
    engine, truth, payments = synced
    checked, labelled = 0, set()
    for corp, rows in truth.items():
        for month, expected in expected_months(rows, payments[corp]).items():
            statement = monthly_statement(engine, corp, dt.date.fromisoformat(f"{month}-01"))
            for key in ("opening_balance", "deposits", "bonus_credits", "usage_points", "refunds", "adjustments",
                        "closing_balance", "transactions"):  # fmt: skip
                assert statement.amount(key) == expected[key], (corp, month, key)
            for key in ("deposits", "pending_deposits", "cancelled_deposits"):
                assert (statement.won(key) or 0) == expected[f"{key}:won"], (corp, month, key)
            for item, points in expected["services"].items():
                assert statement.amount(f"usage:{item}") == points
                line = next(line for line in statement.lines if line.key == f"usage:{item}")
                if item in POPBILL_SERVICES:
                    assert POPBILL_SERVICES[item] in line.label_ko
                    labelled.add(item)
            assert statement.balanced
            checked += 1
    assert checked >= 8
    assert {110, 150, 182} <= labelled  # the usage mix is a real partner's: these are always there
    assert any(expected_months(truth[MEMBERS[1]])[m]["adjustments"] for m in expected_months(truth[MEMBERS[1]]))
    assert any(e["deposits:won"] for c in MEMBERS for e in expected_months(truth[c], payments[c]).values())


def test_service_names_come_from_the_item_codes_table(synced):
    engine, truth, _ = synced
    month = dt.date.fromisoformat(f"{_month(truth[MEMBERS[0]][-1]['txDT'])}-01")
    code = next(r["itemCode"] for r in reversed(truth[MEMBERS[0]]) if r["txType"] == codes.TX_USE)
    assert load_service_names(engine).ko(999) == "알 수 없는 서비스 (999)"  # never a guess
    with engine.begin() as conn:
        old = conn.execute(text("SELECT name_ko FROM item_codes WHERE code = :c"), {"c": code}).scalar()
        conn.execute(text("UPDATE item_codes SET name_ko = '고친 이름' WHERE code = :c"), {"c": code})
    try:
        line = next(x for x in monthly_statement(engine, MEMBERS[0], month).lines if x.key == f"usage:{code}")
        assert "고친 이름" in line.label_ko  # a partner fixes a row with SQL; statements follow
        with engine.connect() as conn:
            assert conn.execute(text("SELECT DISTINCT service FROM v_monthly_usage_by_service WHERE item_code = :c"),
                                {"c": code}).scalar() == "고친 이름"  # fmt: skip
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE item_codes SET name_ko = :n WHERE code = :c"), {"n": old, "c": code})


def test_months_outside_the_data_are_refused_and_the_current_month_carries_the_balance(synced):
    engine, truth, _ = synced
    current = today_kst().replace(day=1)
    statement = monthly_statement(engine, MEMBERS[0], current)
    assert statement.amount("closing_balance") == Decimal(truth[MEMBERS[0]][-1]["balance"])
    first = dt.date.fromisoformat(f"{_month(truth[MEMBERS[0]][0]['txDT'])}-01")
    for month, needle in [(current + dt.timedelta(days=40), "after the current month"),
                          (dt.date(2030, 1, 1), "after the current month"),
                          (previous_month(first), "before 1234567890's first row"),
                          (dt.date(1999, 1, 1), "before 1234567890's first row")]:  # fmt: skip
        with pytest.raises(StatementError, match=needle):
            monthly_statement(engine, MEMBERS[0], month)
    with pytest.raises(StatementError, match="not a member"):
        monthly_statement(engine, "9999999999", current)


def test_csv_export_reads_back(synced):
    engine, truth, _ = synced
    columns, rows = exporting.fetch(engine, "usages", None, None)
    out = io.BytesIO()
    exporting.write_stream(columns, rows, "csv", "en", out)  # as `ledger export usages` writes to stdout
    body = out.getvalue().decode("utf-8")
    parsed = list(csv.DictReader(io.StringIO(body)))
    assert len(parsed) == sum(len(r) for r in truth.values())
    by_member = defaultdict(list)
    for row in parsed:
        by_member[row["corp_num"]].append(row)
    for corp, rows_ in truth.items():
        assert [Decimal(r["balance"]) for r in by_member[corp]] == [Decimal(t["balance"]) for t in rows_]
        first = rows_[0]["txDT"]
        assert (
            by_member[corp][0]["tx_dt"]
            == f"{first[:4]}-{first[4:6]}-{first[6:8]} {first[8:10]}:{first[10:12]}:{first[12:]}"
        )


def test_xlsx_export_reads_back_with_number_formats_and_korean_headers(synced, tmp_path):
    engine, _, _ = synced
    columns, rows = exporting.fetch(engine, "v_monthly_statements", None, None)
    path = tmp_path / "statements.xlsx"
    exporting.write_file(columns, rows, "xlsx", "ko", path, "statements")
    sheet = load_workbook(path).active
    headers = [c.value for c in sheet[1]]
    assert headers[:4] == ["사업자번호", "상호", "월", "기초잔액"]
    assert sheet.max_row == len(rows) + 1
    for excel_row, row in zip(sheet.iter_rows(min_row=2), rows, strict=True):
        for cell, value in zip(excel_row, row, strict=True):
            if isinstance(value, Decimal):
                whole = value == value.to_integral_value()
                assert Decimal(str(cell.value)) == value
                assert cell.number_format == (exporting.WHOLE_FORMAT if whole else exporting.FRACTION_FORMAT)
            elif isinstance(value, dt.date):
                assert cell.value.date() == value and cell.number_format == exporting.DATE_FORMAT


def test_export_filters_by_korean_day(synced):
    engine, truth, _ = synced
    day = truth[MEMBERS[0]][len(truth[MEMBERS[0]]) // 2]["txDT"][:8]
    d = dt.date(int(day[:4]), int(day[4:6]), int(day[6:]))
    _, rows = exporting.fetch(engine, "usages", d, d)
    expected = sum(1 for rs in truth.values() for r in rs if r["txDT"][:8] == day)
    assert len(rows) == expected > 0
    with pytest.raises(exporting.ExportError, match="cannot be exported"):
        exporting.fetch(engine, "members; DROP TABLE usages", None, None)


def _drop_role(engine, role: str) -> None:
    """Drop a role this run created: its grants in the test database first, then the role."""
    with engine.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {role}"))
        conn.execute(text(f"DROP ROLE {role}"))


def test_reader_role_reads_and_cannot_write(synced, request):
    once(request)
    engine, _, _ = synced
    role = unique_name("reader")
    create_reader(engine, role, "pw-not-logged")
    request.addfinalizer(lambda: _drop_role(engine, role))
    url = make_url(TEST_DATABASE_URL)
    with psycopg.connect(host=url.host, port=url.port, dbname=url.database, user=role,
                         password="pw-not-logged", autocommit=True) as conn:  # fmt: skip
        assert conn.execute("SELECT count(*) FROM usages").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM v_monthly_statements").fetchone()[0] > 0
        for statement in ("INSERT INTO members (corp_num) VALUES ('1111111111')", "UPDATE usages SET balance = 0",
                          "DELETE FROM payments", "CREATE TABLE sneaky (id int)", "TRUNCATE usages"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with pytest.raises(RoleError, match="ROLE"):
        create_reader(engine, "Robert'); DROP TABLE usages;--")


def ledger_cli(*args) -> subprocess.CompletedProcess:
    """`ledger ARGS` on the test database, in this process (click's runner: the console script's code)."""
    result = run(*args)
    return subprocess.CompletedProcess(["ledger", *args], result.exit_code, result.stdout, result.stderr)


def test_statement_and_export_commands(synced, tmp_path, request):
    once(request)
    engine, truth, _ = synced
    month = f"{truth[MEMBERS[0]][-1]['txDT'][:4]}-{truth[MEMBERS[0]][-1]['txDT'][4:6]}"
    result = ledger_cli(
        "report", "statement", "--member", MEMBERS[0], "--month", month, "--format", "csv", "--lang", "ko"
    )
    assert result.returncode == 0, result.stderr
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    closing = next(r for r in lines if r["항목"] == "기말잔액")
    assert Decimal(closing["금액"]) == Decimal(truth[MEMBERS[0]][-1]["balance"])
    out = tmp_path / "s.xlsx"
    assert (
        ledger_cli(
            "report", "statement", "--member", MEMBERS[0], "--month", month, "--format", "xlsx", "--out", str(out)
        ).returncode
        == 0
    )
    assert load_workbook(out).active.max_row > 5
    export = tmp_path / "usages.csv"
    assert ledger_cli("export", "usages", "--format", "csv", "--out", str(export)).returncode == 0
    assert export.read_text(encoding="utf-8-sig").count("\n") == sum(len(r) for r in truth.values()) + 1
    for args, needle in [(["report", "statement", "--member", MEMBERS[0], "--month", "2026-13"], "--month"),
                         (["report", "statement", "--member", "9999999999", "--month", month], "not a member"),
                         (["export", "secrets"], "cannot be exported"),
                         (["export", "usages", "--from", "2026-02-01", "--to", "2026-01-01"], "--from"),
                         (["report", "statement", "--member", MEMBERS[0], "--month", month, "--format", "xlsx"], "--out"),
                         (["reconcile", "--date", "yesterday"], "--date"),
                         (["db", "create-reader", "Bad Name"], "ROLE")]:  # fmt: skip
        result = ledger_cli(*args)
        assert result.returncode != 0 and needle in result.stderr, (args, result.stderr)
