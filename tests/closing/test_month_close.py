"""Month close: a closed month's statement never moves; a late usage row and a deposit settled
after the close become a closed_period_changed discrepancy with one alert and a prior-period
adjustment in the next month; reopening and closing again takes them in. And a row whose sign
the balance chain contradicts is a discrepancy, not a crash."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger.closing.service import CloseError, check_closed_months, close_month, list_closes, reopen_month
from ledger.kst import KST
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient, codes
from ledger.reconcile.service import reconcile
from ledger.reports.statement import live_statement, monthly_statement
from ledger.simulator import Simulator
from ledger.simulator.world import stamp
from ledger.sync.service import sync_all
from tests.conftest import client_settings, small_config
from tests.reports.test_reports import ledger_cli

CORP = "1234567890"
OCTOBER, NOVEMBER = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
START = dt.datetime(2026, 10, 31, 15, 0, tzinfo=KST)


@pytest.fixture
def sim():
    with Simulator(small_config(start=START, history_days=45, usage_per_day=8, settle_after_polls=None)) as simulator:
        yield simulator


@pytest.fixture
def env(clean_engine, sim):
    settings = dataclasses.replace(client_settings(sim), reconcile_max_sync_age=10**8)
    with Session(clean_engine) as session:
        add_member(session, MemberInput(CORP, name="(주)A/S센터"))
        session.commit()
    with PopbillClient(settings) as client:
        yield clean_engine, client, settings
    # Leave no rows for tests that expect an empty ledger, and no pooled connection holding the
    # sync's temporary table (which would block test_migrations' downgrade).
    with clean_engine.begin() as conn:
        conn.execute(text("TRUNCATE members RESTART IDENTITY CASCADE"))
    clean_engine.dispose()


def sync(env, sim):
    engine, client, _ = env
    assert all(r.status == "succeeded" for r in sync_all(engine, client, today=sim.world.today()))


def closed_period_alerts(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM notifications WHERE text LIKE '[CLOSED PERIOD CHANGED]%'")
        ).scalar()


def open_changes(engine) -> dict[str, Decimal]:
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT fingerprint, difference FROM discrepancies WHERE check_name = 'closed_period_changed' "
            "AND period = '2026-10' AND status = 'open'")).all())  # fmt: skip


def test_close_late_rows_adjustment_reopen_and_close_again(env, sim):
    engine, _, settings = env
    deposit = sim.world.request_payment(CORP, {"settlecost": "110000", "settlername": "홍길동",
                                               "settleremail": "a@b.kr", "paymentname": "(주)A/S센터"})  # fmt: skip
    sim.world.advance_days(1)  # October 31 is generated; the clock is November 1
    late = sim.world.usage_truth(CORP)[-1]
    assert late["txDT"].startswith("202610") and late["txType"] == codes.TX_USE
    sim.world.hold_back(CORP, 1)  # October's last row reaches the index late
    sync(env, sim)

    with pytest.raises(CloseError, match="has not ended"):
        close_month(engine, NOVEMBER, "회계팀", today=sim.world.today())
    assert close_month(engine, OCTOBER, "회계팀", today=sim.world.today()).closed == [CORP]
    frozen = monthly_statement(engine, CORP, OCTOBER)
    assert frozen.closed and frozen.closed.by == "회계팀"
    assert frozen.won("pending_deposits") == Decimal(110000)
    with pytest.raises(CloseError, match="already closed"):
        close_month(engine, OCTOBER, "회계팀", today=sim.world.today())

    sim.world.release(CORP)
    sim.world.complete_payment(CORP, deposit.settle_code)  # settles in November
    sync(env, sim)
    reconcile(engine, settings)

    again = monthly_statement(engine, CORP, OCTOBER)
    assert again.lines == frozen.lines  # the closed month does not move
    with engine.connect() as conn:
        live = live_statement(conn, CORP, OCTOBER)
    used = abs(Decimal(late["txPoint"]))
    assert live.amount("usage_points") - frozen.amount("usage_points") == used  # the ledger has the row
    changes = open_changes(engine)
    assert changes["usage_points"] == used
    assert changes["closing_balance"] == -used
    assert changes["pending_deposits:won"] == Decimal(-110000)
    assert changes[f"usage:{late['itemCode']}"] == used
    assert closed_period_alerts(engine) == 1
    reconcile(engine, settings)  # found again: the same discrepancies, no second alert
    assert closed_period_alerts(engine) == 1 and open_changes(engine) == changes

    november = monthly_statement(engine, CORP, NOVEMBER)
    assert november.closed is None
    assert november.amount("opening_balance") == frozen.amount("closing_balance")  # as booked
    assert november.amount("prior_period_adjustment") == -used
    assert november.amount("prior_period:2026-10:usage_points") == used
    assert november.won("deposits") == Decimal(110000)  # the money arrived in November
    assert november.balanced

    with pytest.raises(CloseError, match="--reason"):
        reopen_month(engine, OCTOBER, "회계팀", " ")
    assert reopen_month(engine, OCTOBER, "회계팀", "late usage row") == [CORP]
    assert open_changes(engine) == {}
    assert monthly_statement(engine, CORP, OCTOBER).closed is None
    close_month(engine, OCTOBER, "회계팀", today=sim.world.today())
    reclosed = monthly_statement(engine, CORP, OCTOBER)
    assert reclosed.amount("usage_points") == frozen.amount("usage_points") + used  # now included
    assert reclosed.won("pending_deposits") == 0
    assert check_closed_months(engine, settings) == []
    assert "prior_period_adjustment" not in {line.key for line in monthly_statement(engine, CORP, NOVEMBER).lines}
    audit = list_closes(engine)
    assert [(r["reopened_by"], r["reopen_reason"]) for r in audit] == [(None, None), ("회계팀", "late usage row")]

    result = ledger_cli("closes", "--json")
    assert result.returncode == 0 and "late usage row" in result.stdout, result.stderr
    result = ledger_cli("report", "statement", "--member", CORP, "--month", "2026-10", "--format", "csv")
    assert result.returncode == 0 and "is closed" in result.stderr
    for args, needle in [(["close", "--month", "2026-13"], "--month"),
                         (["reopen", "--month", "2026-09", "--reason", "x"], "not closed"),
                         (["close", "--month", "2026-10", "--member", "9999999999"], "not a member")]:  # fmt: skip
        result = ledger_cli(*args)
        assert result.returncode != 0 and needle in result.stderr, (args, result.stderr)


def test_a_sign_the_chain_contradicts_is_a_discrepancy(env, sim):
    engine, _, settings = env
    member = sim.world.member(CORP)
    # A row typed 'use' (a debit in tx_types) after which the balance went up by its txPoint.
    member.append_usage(stamp(sim.world.now()), 110, codes.TX_USE, 500, ("user01", "김하나"))
    sim.world.advance_days(1)
    sync(env, sim)
    reconcile(engine, settings)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT check_name FROM discrepancies WHERE status = 'open'")).scalars().all()
        disagreements = conn.execute(text("SELECT sum(sign_disagreements) FROM v_monthly_statements")).scalar()
        sources = dict(conn.execute(text("SELECT sign_source, count(*) FROM v_usage_signed GROUP BY 1")).all())
    assert found.count("tx_sign") == 1 and "balance_chain" not in found
    assert disagreements == 1
    assert sources.get("chain", 0) > 0 and sources.get("tx_types") == 1  # only the first row: no chain yet
