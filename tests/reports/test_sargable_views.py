"""The accountants' views give the figures 0004's definitions gave, and a filter on one member
and one month reaches the usages index (EXPLAIN) instead of grouping every usage row first."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.service import sync_all
from tests.conftest import client_settings, empty_ledger, small_config
from tests.synthetic import FIRST_CORP_NUM, fill, shadow_with_0004_views

SIMULATED = ["1234567890", "2208112345"]
MONTH = dt.date(2025, 3, 1)
VIEWS = ["v_usage_signed", "v_usage_daily", "v_monthly_usage_by_service", "v_deposits", "v_monthly_statements"]
# One member and one month, as statements and `ledger report` ask for them.
MEMBER_MONTH = {
    "v_monthly_statements": "SELECT * FROM {view} WHERE corp_num = :c AND month = :m",
    "v_monthly_usage_by_service": "SELECT * FROM {view} WHERE corp_num = :c AND month = :m",
    "v_usage_daily": "SELECT * FROM {view} WHERE corp_num = :c AND day >= :m AND day < :m + 31",
}


@pytest.fixture(scope="module")
def ledger(engine):
    """Two simulated members synced for real, beside 300 synthetic members (120,000 usages) with
    rows the chain cannot sign (no balance) and types not in tx_types."""
    with Simulator(small_config(history_days=100, usage_per_day=12)) as sim:
        with Session(engine) as session:
            for corp in SIMULATED:
                add_member(session, MemberInput(corp, name=f"상사 {corp[-4:]}"))
            session.commit()
        sim.set_balance(SIMULATED[1], "123456.7")
        with PopbillClient(client_settings(sim)) as client:
            assert all(r.status == "succeeded" for r in sync_all(engine, client, today=sim.world.today()))
    with engine.begin() as conn:
        fill(conn, members=300, rows_per_member=400)
        conn.execute(text("UPDATE usages SET balance = NULL WHERE id % 97 = 0"))
        conn.execute(text("UPDATE usages SET tx_type = 99 WHERE id % 89 = 0"))
        conn.execute(text("ANALYZE usages"))
    yield engine
    empty_ledger(engine)


def _rows(conn, query: str, params=None) -> list[tuple]:
    return sorted((tuple(row) for row in conn.execute(text(query), params or {})), key=repr)


# v_monthly_statements also has the quiet member-months (no usage rows), which 0004 left out.
WITH_ROWS = {"v_monthly_statements": " WHERE transactions > 0"}


@pytest.mark.parametrize("view", VIEWS)
def test_every_row_and_column_equals_the_0004_definition(ledger, view):
    with ledger.connect() as conn:
        new = conn.execute(text(f"SELECT * FROM public.{view} LIMIT 0")).keys()
        new_rows = _rows(conn, f"SELECT * FROM public.{view}{WITH_ROWS.get(view, '')}")
        shadow_with_0004_views(conn)
        old = conn.execute(text(f"SELECT * FROM pg_temp.{view} LIMIT 0")).keys()
        old_rows = _rows(conn, f"SELECT * FROM pg_temp.{view}")
        conn.rollback()
    assert list(new) == list(old)
    assert len(new_rows) > 100
    assert new_rows == old_rows


def test_a_simulated_member_month_equals_the_0004_definition(ledger):
    """The member-month filter gives the same line as filtering 0004's whole view."""
    with ledger.connect() as conn:
        month = conn.execute(text("SELECT max(month) FROM v_monthly_statements WHERE corp_num = :c AND transactions > 0"),
                             {"c": SIMULATED[1]}).scalar()  # fmt: skip
        params = {"c": SIMULATED[1], "m": month}
        new = {view: _rows(conn, query.format(view=f"public.{view}"), params) for view, query in MEMBER_MONTH.items()}
        shadow_with_0004_views(conn)
        old = {view: _rows(conn, query.format(view=f"pg_temp.{view}"), params) for view, query in MEMBER_MONTH.items()}
        conn.rollback()
    assert all(new[view] for view in MEMBER_MONTH)
    assert new == old


def test_quiet_months_carry_the_balance_to_the_current_month(ledger):
    """Every member-month from the member's first row to the current Korean month has a line:
    a month without usage rows opens and closes at the balance carried in, so a SQL total over
    the view loses no member (the synthetic members' rows end in December 2025)."""
    member = str(FIRST_CORP_NUM + 7)
    with ledger.connect() as conn:
        rows = conn.execute(text("SELECT month, opening_balance, closing_balance, transactions, deposits_won "
                                 "FROM v_monthly_statements WHERE corp_num = :c ORDER BY month"), {"c": member}).all()
        current = conn.execute(text("SELECT date_trunc('month', now() AT TIME ZONE 'Asia/Seoul')::date")).scalar()
        last_balance = conn.execute(text(
            "SELECT u.balance FROM usages u JOIN members m ON m.id = u.member_id WHERE m.corp_num = :c "
            "ORDER BY u.tx_dt DESC, u.id DESC LIMIT 1"), {"c": member}).scalar()  # fmt: skip
        members_in_month = conn.execute(text(
            "SELECT count(DISTINCT corp_num) FROM v_monthly_statements WHERE month = :m"), {"m": current}).scalar()
    months = [r.month for r in rows]
    assert months[0] == MONTH.replace(month=1) and months[-1] == current
    assert months == sorted(set(months)) and len(months) == (current.year - 2025) * 12 + current.month
    quiet = [r for r in rows if r.transactions == 0]
    assert quiet and all(r.opening_balance == r.closing_balance == last_balance for r in quiet)
    assert members_in_month == 300 + len(SIMULATED)  # every member, quiet or not


def _usage_scans(plan: dict) -> list[dict]:
    """The plan nodes that read usages (heap scans and the index scans of bitmap scans)."""
    found = []
    if plan.get("Relation Name") == "usages" or "usages" in plan.get("Index Name", ""):
        found.append(plan)
    for child in plan.get("Plans", []):
        found += _usage_scans(child)
    return found


def _plan(conn, query: str, params: dict) -> dict:
    (document,) = conn.execute(text(f"EXPLAIN (FORMAT JSON) {query}"), params).scalar_one()
    return document["Plan"] if isinstance(document, dict) else json.loads(document)[0]["Plan"]


def _reaches_the_index(scans: list[dict], by_month: bool = True) -> bool:
    """Every read of usages goes through an index on member_id, and (by_month) the month's rows
    are read by a member_id and tx_dt range condition (not every row of the member, filtered)."""
    conditions = [scan.get("Index Cond") or scan.get("Recheck Cond") or "" for scan in scans]
    return (
        bool(scans)
        and all(
            scan["Node Type"] != "Seq Scan" and "member_id" in cond
            for scan, cond in zip(scans, conditions, strict=True)
        )
        and (not by_month or any("tx_dt >=" in cond and "tx_dt <" in cond for cond in conditions))
    )


@pytest.mark.parametrize("view", list(MEMBER_MONTH))
def test_one_member_month_reaches_the_usages_index(ledger, view):
    params = {"c": str(FIRST_CORP_NUM + 7), "m": MONTH}
    with ledger.connect() as conn:
        scans = _usage_scans(_plan(conn, MEMBER_MONTH[view].format(view=f"public.{view}"), params))
        shadow_with_0004_views(conn)
        old_scans = _usage_scans(_plan(conn, MEMBER_MONTH[view].format(view=f"pg_temp.{view}"), params))
        conn.rollback()
    assert not [s for s in scans if s["Node Type"] == "Seq Scan"], scans
    # v_usage_daily's month is a range of Korean days: the member's rows come by the index, the
    # days are filtered before the grouping and the previous-balance probes.
    by_month = view != "v_usage_daily"
    assert _reaches_the_index(scans, by_month), scans
    # The same query on 0004's definition reads more: this test can tell them apart.
    assert not _reaches_the_index(old_scans, by_month), old_scans
