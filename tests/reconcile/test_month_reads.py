"""`reconcile --month` reads the month (and what its checks reach) through the index, one range
per member of a batch, and finds what a full reconciliation finds in that month."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text

from ledger.reconcile.models import Discrepancy
from ledger.reconcile.service import USAGE_BETWEEN, Period
from ledger.simulator import Simulator
from tests.conftest import small_config
from tests.reconcile.test_reconcile import CORP, env, run, sync_and_check  # noqa: F401 - fixtures


@pytest.fixture(params=[False, True], ids=["magnitudes", "signed"])
def sim(request):
    """Whether Popbill signs txPoint is not documented: a month reads both as the full run does."""
    config = small_config(history_days=90, usage_per_day=8, settle_after_polls=None, signed_tx_point=request.param)
    with Simulator(config) as simulator:
        yield simulator


def scans_of(plan: dict) -> list[dict]:
    found = [plan] if "Scan" in plan.get("Node Type", "") else []
    for child in plan.get("Plans", []):
        found += scans_of(child)
    return found


def test_month_reconcile_finds_what_the_full_one_finds_there_reading_by_index(env, sim):  # noqa: F811
    engine = env[0]
    rows = sim.world.usage_truth(CORP)
    index = len(rows) // 2
    month = rows[index + 1]["txDT"][:6]
    sim.world.drop_usage_row(CORP, index)
    sync_and_check(env, sim)
    month_text = f"{month[:4]}-{month[4:]}"
    run(env)
    run(env, period=Period.of(month=month_text))
    with engine.connect() as conn:
        found = conn.execute(select(Discrepancy.period, Discrepancy.check_name, Discrepancy.fingerprint)).all()
        full = {(c, f) for p, c, f in found if p == "all" and c == "balance_chain"}
        monthly = {(c, f) for p, c, f in found if p == month_text}
        assert monthly == full and len(full) == 1

        period = Period.of(month=month_text)
        member_id = conn.execute(text("SELECT id FROM members WHERE corp_num = :c"), {"c": CORP}).scalar()
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: show the index can serve
        params = {"ids": [member_id], "since": period.start - dt.timedelta(days=30), "until": period.end}
        explained = conn.execute(text(f"EXPLAIN (FORMAT JSON) {USAGE_BETWEEN.text}"), params).scalar()
    plan = (explained if isinstance(explained, list) else json.loads(explained))[0]["Plan"]
    usage_scans = [
        s for s in scans_of(plan) if s.get("Relation Name") == "usages" or "usages" in s.get("Index Name", "")
    ]
    assert usage_scans, plan
    # Every read of usages is an index range on (member_id, tx_dt), none a filter over all rows.
    for scan in usage_scans:
        assert scan["Index Name"] == "ix_usages_member_id_tx_dt", scan
        assert "member_id" in scan["Index Cond"] and "tx_dt" in scan["Index Cond"], scan
