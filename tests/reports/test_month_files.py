"""The month summary adds up on every row, in worlds with adjustments and prior-period
adjustments, whichever way txPoint is signed; a workbook that would not add up is never
written; the PDF month pack holds one statement per member and the workbook; the command
output names a few members and --json all; files follow the umask; months outside the data
are refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
import subprocess
import sys
import zipfile
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from ledger.closing.service import close_month
from ledger.kst import KST
from ledger.popbill import PopbillClient
from ledger.reports.statement import StatementError, monthly_statement
from ledger.reports.workbook import SIGNS, WorkbookError, month_pack, month_workbook
from ledger.simulator import Simulator
from ledger.sync.service import sync_all
from tests.conftest import TEST_DATABASE_URL, add_members, client_settings, empty_ledger, small_config
from tests.reports.rendering import pdf_text, require_tools
from tests.reports.test_exports import summary_rows
from tests.reports.test_reports import ledger_cli

MEMBERS = {"1234567890": "팝빌 테스트상사", "2208112345": "한빛전자 주식회사", "1018212345": "누리물산"}
LATE, ADJUSTED = "1234567890", "2208112345"
OCTOBER, NOVEMBER = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
START = dt.datetime(2026, 10, 31, 15, 0, tzinfo=KST)


@pytest.fixture(scope="module", params=[False, True], ids=["magnitudes", "signed"])
def world(engine, request):
    """October closed, then a late October row: November carries a prior-period adjustment;
    an adjustment in November; a deposit pending. Once per txPoint convention."""
    empty_ledger(engine)
    config = small_config(start=START, history_days=45, usage_per_day=8, settle_after_polls=None,
                          signed_tx_point=request.param)  # fmt: skip
    with Simulator(config) as sim:
        settings = dataclasses.replace(client_settings(sim), reconcile_max_sync_age=10**8)
        add_members(engine, MEMBERS)
        sim.world.request_payment(LATE, {"settlecost": "55000", "settlername": "홍길동", "settleremail": "a@b.kr",
                                         "paymentname": "x"})  # fmt: skip
        sim.world.advance_days(1)  # the clock is November 1; October is whole
        sim.world.hold_back(LATE, 1)  # October's last row reaches the index late
        with PopbillClient(settings) as client:
            assert all(r.status == "succeeded" for r in sync_all(engine, client, today=sim.world.today()))
            assert close_month(engine, OCTOBER, "회계팀", today=sim.world.today()).closed == sorted(MEMBERS)
            sim.world.release(LATE)
            sim.world.set_balance(ADJUSTED, "123456.7")  # a November adjustment
            sim.world.advance_days(2)
            assert all(r.status == "succeeded" for r in sync_all(engine, client, today=sim.world.today()))
        yield engine, sim.world.today()
    empty_ledger(engine)


def test_every_summary_row_adds_up_with_adjustments_and_prior_period_adjustments(world, tmp_path):
    engine, today = world
    out = tmp_path / "november.xlsx"
    report = month_workbook(engine, NOVEMBER, out, "en", today=today, largest=0)
    rows = summary_rows(load_workbook(out)["Summary"])
    assert len(rows) == report.members == len(MEMBERS)
    by_corp = {r["corp_num"].replace("-", ""): r for r in rows}
    assert Decimal(str(by_corp[LATE]["prior_period_adjustment"])) != 0  # the late October row
    assert Decimal(str(by_corp[ADJUSTED]["adjustments"])) != 0  # the adjustment
    assert Decimal(str(by_corp[LATE]["pending_deposits_won"])) == 0  # pending since October: October's
    for corp, row in by_corp.items():
        value = {key: Decimal(str(row[key])) for key in [*SIGNS, "closing_balance", "check"]}
        moved = sum((sign * value[key] for key, sign in SIGNS.items()), Decimal(0))
        assert value["closing_balance"] - moved == 0 == value["check"], corp
        statement = monthly_statement(engine, corp, NOVEMBER, today=today)
        for key in [*SIGNS, "closing_balance"]:
            assert value[key] == statement.amount(key, Decimal(0)), (corp, key)
    october = summary_rows(load_workbook(month_workbook(engine, OCTOBER, tmp_path / "o.xlsx", "ko", today=today).path)
                           ["요약"])  # fmt: skip
    assert {r["month_status"] for r in october} == {"마감"}
    assert Decimal(str(next(r for r in october if r["corp_num"] == "123-45-67890")["pending_deposits_won"])) == 55000


def test_a_workbook_that_does_not_add_up_is_never_written(world, tmp_path):
    engine, today = world
    with engine.begin() as conn:  # a balance that no movement explains: a row lost upstream
        row = conn.execute(text(
            "SELECT u.id, u.balance FROM usages u JOIN members m ON m.id = u.member_id WHERE m.corp_num = :c "
            "ORDER BY u.tx_dt DESC, u.id DESC LIMIT 1"), {"c": ADJUSTED}).one()  # fmt: skip
        conn.execute(text("UPDATE usages SET balance = balance + 7 WHERE id = :i"), {"i": row.id})
    try:
        out = tmp_path / "november.xlsx"
        with pytest.raises(WorkbookError, match=rf"{ADJUSTED} \(한빛전자 주식회사\) by \+7"):
            month_workbook(engine, NOVEMBER, out, "en", today=today)
        assert not out.exists() and not list(tmp_path.iterdir())  # nothing, not even a temporary file
        with pytest.raises(WorkbookError, match=ADJUSTED):
            month_pack(engine, NOVEMBER, tmp_path / "pack.zip", "en", today=today)
        assert not list(tmp_path.iterdir())
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE usages SET balance = :b WHERE id = :i"), {"b": row.balance, "i": row.id})


def _cli(*args, umask: int | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    env["LEDGER_DATABASE_URL"] = TEST_DATABASE_URL
    return subprocess.run([sys.executable, "-m", "ledger", *args], capture_output=True, text=True, env=env, timeout=300,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)  # fmt: skip


def test_pdf_pack_summary_json_and_file_permissions(world, tmp_path, request):
    if request.node.callspec.params["world"]:
        pytest.skip("same code path as the magnitudes run")
    require_tools()  # pdftotext
    pack = tmp_path / "pack.zip"
    result = _cli("report", "month", "--month", "2026-11", "--format", "pdf", "--out", str(pack), "--largest", "1",
                  "--lang", "ko", umask=0o027)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3 member(s) in the summary; 3 PDF statement(s)" in result.stderr
    assert stat.S_IMODE(pack.stat().st_mode) == 0o640  # the umask decides, not mkstemp's 0600
    with zipfile.ZipFile(pack) as archive:
        names = archive.namelist()
        assert "2026-11/summary.xlsx" in names
        pdfs = sorted(n for n in names if n.endswith(".pdf"))
        assert [n.split("/")[1][:10] for n in pdfs] == sorted(MEMBERS)
        (tmp_path / "one.pdf").write_bytes(archive.read(next(n for n in pdfs if LATE in n)))
    text_ = pdf_text(tmp_path / "one.pdf")
    assert MEMBERS[LATE] in text_ and "전기 수정 (2026-10)" in text_

    out = tmp_path / "november.xlsx"
    result = _cli("report", "month", "--month", "2026-11", "--out", str(out), "--json", "--largest", "3")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["members"] == 3 and {f["corp_num"] for f in document["flagged"]} == set(MEMBERS)
    assert all(f["reasons"] and f["sheet"] for f in document["flagged"])
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # the default umask
    result = _cli("report", "month", "--month", "2026-11", "--out", str(out), "--largest", "3", "--sheets", "1")
    assert "3 flagged (1018212345, 1234567890, 2208112345)" in result.stderr and "sheet limit" in result.stderr
    assert len(load_workbook(out).sheetnames) == 3  # summary, flagged, one member


def test_months_outside_the_data_are_refused_in_one_line(world, request, tmp_path):
    if request.node.callspec.params["world"]:
        pytest.skip("same code path as the magnitudes run")
    engine, today = world
    for month, needle in [(dt.date(2030, 1, 1), "after the current month"),
                          (dt.date(1999, 1, 1), "before the ledger's first row")]:  # fmt: skip
        with pytest.raises(StatementError, match=needle):
            month_workbook(engine, month, tmp_path / "x.xlsx", "en")
        with pytest.raises(StatementError, match=needle):
            month_pack(engine, month, tmp_path / "x.zip", "en")
    with pytest.raises(StatementError, match=f"before {LATE}'s first row"):
        month_workbook(engine, dt.date(1999, 1, 1), tmp_path / "x.xlsx", "en", corp_nums=[LATE])
    for args, needle in [(["report", "statement", "--member", LATE, "--month", "1999-01", "--format", "pdf",
                           "--out", str(tmp_path / "x.pdf")], f"before {LATE}'s first row (2026-09)"),
                         (["sync", "--since", "2099-01-01"], "in the future")]:  # fmt: skip
        result = ledger_cli(*args)
        assert result.returncode == 2 and needle in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def test_a_missing_or_unusable_font_is_one_clear_line(tmp_path):
    from ledger.reports.pdf import MissingFontError, find_font, register_fonts

    with pytest.raises(MissingFontError, match="LEDGER_PDF_FONT: .* is not a file; .*apt-get install fonts-nanum"):
        find_font(tmp_path / "NanumGothic.ttf")
    latin = tmp_path / "latin.ttf"  # a TrueType font without Hangul, registered under its own name only
    dejavu = next((p for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",) if os.path.exists(p)), None)
    if dejavu:
        latin.write_bytes(open(dejavu, "rb").read())
        with pytest.raises(MissingFontError, match="has no Hangul"):
            register_fonts(latin, None)
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    with pytest.raises(MissingFontError, match="cannot be used"):
        register_fonts(broken, None)
