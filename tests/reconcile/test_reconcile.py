"""Each reconciliation check catches its kind of discrepancy, made by the simulator, and
finds nothing on clean data; re-runs are idempotent and what disappears is resolved."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.alerts.outbox import deliver
from ledger.alerts.service import check_balances
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PaymentForm, PopbillClient, codes
from ledger.reconcile.models import Discrepancy
from ledger.reconcile.service import Period, reconcile
from ledger.secret import Secret
from ledger.simulator import Simulator
from ledger.sync.service import sync_all
from tests.conftest import client_settings, small_config

MEMBERS = ["1234567890", "2208112345", "1018212345"]
CORP = MEMBERS[0]


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=90, usage_per_day=8, settle_after_polls=None)) as simulator:
        yield simulator


@pytest.fixture
def env(clean_engine, sim, hook):
    settings = dataclasses.replace(
        client_settings(sim),
        alert_webhook_url=Secret(hook.url),
        alert_runway_days=0,
        alert_threshold=Decimal("0"),
        partner_threshold=Decimal("0"),
    )
    with Session(clean_engine) as session:
        for corp in MEMBERS:
            add_member(session, MemberInput(corp))
        session.commit()
    with PopbillClient(settings) as client:
        yield clean_engine, client, settings


def sync_and_check(env, sim):
    engine, client, settings = env
    results = sync_all(engine, client, today=sim.world.today())
    assert all(r.status == "succeeded" for r in results)
    check_balances(engine, client, settings)


def run(env, **kwargs):
    engine, _, settings = env
    reports = reconcile(engine, settings, **kwargs)
    deliver(engine, settings)
    return {r.corp_num: r for r in reports}


def findings_for(engine, corp) -> list[tuple[str, dict, Decimal | None]]:
    from sqlalchemy import text

    with engine.connect() as conn:
        return [
            (r.check_name, r.evidence, r.difference)
            for r in conn.execute(
                text("SELECT d.check_name, d.evidence, d.difference FROM discrepancies d JOIN members m ON m.id = d.member_id "
                     "WHERE m.corp_num = :c AND d.status = 'open' ORDER BY d.check_name"), {"c": corp},
            )
        ]  # fmt: skip


def checks_of(engine, corp) -> list[str]:
    return [f[0] for f in findings_for(engine, corp)]


def test_clean_ledger_reconciles(env, sim, hook):
    sync_and_check(env, sim)
    reports = run(env)
    assert all(r.reconciled and r.new == 0 for r in reports.values())
    assert checks_of(env[0], CORP) == []
    assert hook.received == []


def test_dropped_row_breaks_the_chain_where_it_was(env, sim):
    rows = sim.world.usage_truth(CORP)
    index = len(rows) // 2
    dropped = sim.world.drop_usage_row(CORP, index)
    after = rows[index + 1]
    sync_and_check(env, sim)
    reports = run(env)
    assert not reports[CORP].reconciled and reports[MEMBERS[1]].reconciled
    found = findings_for(env[0], CORP)
    assert [f[0] for f in found] == ["balance_chain"]
    evidence = found[0][1]
    assert (
        evidence["row"]["balance"] == after["balance"] and evidence["previous"]["balance"] == rows[index - 1]["balance"]
    )
    stamp = after["txDT"]
    assert (
        evidence["row"]["tx_dt"] == f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:12]}:{stamp[12:]}"
    )
    assert dropped["balance"] not in (after["balance"], rows[index - 1]["balance"])


def test_doubled_row_breaks_the_chain(env, sim):
    rows = sim.world.usage_truth(CORP)
    index = next(i for i in range(len(rows) // 2, len(rows)) if rows[i]["txType"] == codes.TX_USE)
    sim.world.double_usage_row(CORP, index)
    sync_and_check(env, sim)
    run(env)
    found = findings_for(env[0], CORP)
    assert [f[0] for f in found] == ["balance_chain"]
    assert found[0][1]["row"]["balance"] == rows[index]["balance"]


def test_lost_credit_is_a_deposit_without_credit(env, sim):
    lost = sim.world.lose_credit(CORP)
    sync_and_check(env, sim)
    run(env)
    found = findings_for(env[0], CORP)
    assert sorted(f[0] for f in found) == ["balance_chain", "deposit_without_credit"]
    deposit = next(f for f in found if f[0] == "deposit_without_credit")
    assert deposit[1]["points"] == lost["txPoint"] and deposit[2] == -Decimal(lost["txPoint"])


def test_hidden_deposit_leaves_a_credit_without_deposit(env, sim):
    payment = next(p for p in sim.world.member(CORP).payments[1:] if p.settle_state == codes.SETTLE_DONE)
    sim.world.hide_payment(CORP, payment.settle_code)
    sync_and_check(env, sim)
    run(env)
    found = findings_for(env[0], CORP)
    assert [f[0] for f in found] == ["credit_without_deposit"]
    assert Decimal(found[0][1]["tx_point"]) * 10 == payment.settle_point


def test_shifted_balance_fails_the_closing_check(env, sim):
    sim.world.shift_reported_balance(CORP, "250.5")
    sync_and_check(env, sim)
    run(env)
    found = findings_for(env[0], CORP)
    assert [f[0] for f in found] == ["closing_balance"]
    assert found[0][2] == Decimal("-250.5")  # the ledger minus what Popbill reported


def test_lost_refund_debit(env, sim):
    corp = next((c for c in MEMBERS if any(r["state"] == codes.REFUND_DONE for r in sim.world.refunds_truth(c))), CORP)
    if not any(r["state"] == codes.REFUND_DONE for r in sim.world.refunds_truth(corp)):  # make one
        form = {"requestpoint": "1000", "accountbank": "국민", "accountnum": "1", "accountname": "홍길동",
                "reason": "해지", "contactname": "홍길동", "tel": "010"}  # fmt: skip
        sim.world.complete_refund(corp, sim.world.request_refund(corp, form).refund_code)
        sim.world.advance_days(1)  # usage after the debit, so losing it breaks the chain
    index = sim.world.last_usage_index(corp, codes.TX_REFUND)
    sim.world.drop_usage_row(corp, index)
    sync_and_check(env, sim)
    run(env)
    assert sorted(checks_of(env[0], corp)) == ["balance_chain", "refund_without_debit"]


def test_old_pending_deposit_and_stale_syncs(env, sim):
    engine, client, settings = env
    client.payment_request(CORP, PaymentForm("담당", "a@b.kr", "010-1234-5678", "입금", Decimal("5000")))
    sync_and_check(env, sim)
    assert "pending_aging" not in checks_of(engine, CORP)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=5)
    reports = run(env, now=later)
    found = checks_of(engine, CORP)
    assert "pending_aging" in found
    assert found.count("sync_stale") == 3  # payments, usage and refunds, five days old
    assert all(not r.reconciled for r in reports.values())  # a stale ledger is never reconciled


def test_reruns_are_idempotent_and_vanished_findings_resolve(env, sim, hook):
    engine, _, _ = env
    sim.world.shift_reported_balance(CORP, "10")
    sync_and_check(env, sim)
    first = run(env)
    second = run(env)
    assert first[CORP].new == 1 and second[CORP].new == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Discrepancy)).scalar() == 1
    assert [t.split("]")[0] for t in hook.texts()] == ["[DISCREPANCY"]  # one alert, for the new one only
    sim.world.shift_reported_balance(CORP, "0")
    sync_and_check(env, sim)
    third = run(env)
    assert third[CORP].resolved == 1 and third[CORP].reconciled
    with engine.connect() as conn:
        row = conn.execute(select(Discrepancy.status, Discrepancy.resolved_at)).one()
    assert row.status == "resolved" and row.resolved_at is not None


def test_month_period_reports_only_that_month(env, sim):
    rows = sim.world.usage_truth(CORP)
    index = len(rows) // 3
    month = rows[index + 1]["txDT"][:6]
    sim.world.drop_usage_row(CORP, index)
    sync_and_check(env, sim)
    month_text = f"{month[:4]}-{month[4:]}"
    other = (dt.date(int(month[:4]), int(month[4:]), 1) - dt.timedelta(days=1)).strftime("%Y-%m")
    run(env, period=Period.of(month=month_text))
    run(env, period=Period.of(month=other))
    with env[0].connect() as conn:
        periods = conn.execute(select(Discrepancy.period, Discrepancy.check_name)).all()
    assert periods == [(month_text, "balance_chain")]


@pytest.mark.parametrize(
    ("day", "month", "message"), [(dt.date(2026, 1, 1), "2026-01", "not both"), (None, "2026-1", "YYYY-MM")]
)
def test_bad_period(day, month, message):
    with pytest.raises(ValueError, match=message):
        Period.of(day, month)
