"""Retention deletes what its policy lets go and nothing that reconcile, statements, month
close, `ledger status`, the catch-up or metrics read: their answers are the same before and
after a prune. The rows are written by the real code (sync, balance checks, the outbox,
heartbeats, schedule claims) at old moments, then aged where the code takes no clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger.alerts.outbox import deliver, enqueue
from ledger.alerts.service import check_balances
from ledger.closing.service import close_month
from ledger.health.heartbeat import beat_tick, task_started
from ledger.kst import KST, today_kst
from ledger.members.service import set_active
from ledger.metrics.ledger_state import QUERIES
from ledger.metrics.member_series import READING_SQL
from ledger.popbill import PopbillClient
from ledger.reconcile.service import Period, reconcile
from ledger.reports.statement import monthly_statement, previous_month
from ledger.retention.policy import Policy
from ledger.retention.rules import KEPT_HEARTBEATS
from ledger.retention.service import prune
from ledger.scheduling.service import claim
from ledger.secret import Secret
from ledger.simulator import Simulator
from ledger.sync.catch_up import overdue
from ledger.sync.service import sync_all
from ledger.sync.status import sync_status
from tests.conftest import add_members, client_settings, small_config

A, B, C = "1234567890", "2208112345", "1018212345"  # C stops being checked (deactivated) long ago
# Every rule on: readings thinned after 30 days, dropped after 60 (the default keeps them 400).
POLICY = Policy(runs_days=90, snapshots_full_days=30, snapshots_days=60, outbox_days=30, heartbeats_days=30,
                claims_days=14, batch_rows=4)  # fmt: skip


def kst(days_ago: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(today_kst() - dt.timedelta(days=days_ago), dt.time(hour, minute), tzinfo=KST)


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=90)) as simulator:
        yield simulator


@pytest.fixture
def world(committed, sim, hook):
    """Three members, two real syncs each, balance checks at old and recent moments, an outbox,
    heartbeats and claims; then some runs aged as a sync run long ago would have left them."""
    engine = committed
    settings = dataclasses.replace(client_settings(sim), alert_webhook_url=Secret(hook.url), alert_runway_days=7,
                                   alert_threshold=Decimal("10000"))  # fmt: skip
    add_members(engine, (A, B, C))
    with PopbillClient(settings) as client:
        first = sync_all(engine, client, corp_nums=[A, B], today=sim.world.today())
        assert all(r.status == "succeeded" for r in first)
        # Old readings: C's are its last ever; A's first at day -100 is what reconcile compares
        # A's ledger with (A's last successful usage sync is made to start just before it).
        for moment in (kst(100, 10), kst(100, 11), kst(100, 12), kst(40, 10), kst(40, 14), kst(40, 23, 30),
                       kst(39, 0, 10), kst(39, 9)):  # fmt: skip
            check_balances(engine, client, settings, now=moment.astimezone(dt.UTC))
        with Session(engine) as session:
            set_active(session, C, False)
            session.commit()
        second = sync_all(engine, client, corp_nums=[A, B], today=sim.world.today())
        assert all(r.status == "succeeded" for r in second)
        check_balances(engine, client, settings)
        check_balances(engine, client, settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))

    with engine.begin() as conn:
        for run in first:
            start, run_id = kst(100, 9) + dt.timedelta(minutes=len(run.kind)), run.run_id
            conn.execute(text("UPDATE sync_runs SET started_at = :s, finished_at = :s + interval '1 minute' WHERE id = :id"),
                         {"s": start, "id": run_id})  # fmt: skip
        a_usage = next(r.run_id for r in second if r.corp_num == A and r.kind == "usage")
        conn.execute(text("UPDATE sync_runs SET status = 'failed', error = 'seeded', started_at = :s, finished_at = :s "
                          "WHERE id = :id"), {"s": kst(95, 9), "id": a_usage})  # fmt: skip
        conn.execute(text("INSERT INTO sync_runs (member_id, kind, status, started_at) "
                          "SELECT id, 'payments', 'running', :s FROM members WHERE corp_num = :b"),
                     {"s": kst(120, 2), "b": B})  # fmt: skip
        conn.execute(text("INSERT INTO sync_runs (member_id, kind, status, started_at, finished_at, error) "
                          "SELECT id, 'refunds', 'skipped', :s, :s, 'held by another sync' FROM members WHERE corp_num = :b"),
                     {"s": kst(110, 2), "b": B})  # fmt: skip

    old = kst(40, 10).astimezone(dt.UTC)
    with engine.begin() as conn:
        enqueue(conn, settings, alert_id=None, kind="test", text="sent long ago", payload={}, now=old)
    hook.fail_next = 1000  # the webhook copies fail and stay failed: never pruned however old
    deliver(engine, settings, now=old + dt.timedelta(minutes=1))
    hook.fail_next = 0
    with engine.begin() as conn:
        enqueue(conn, settings, alert_id=None, kind="test", text="never sent", payload={}, now=old)
        # Unsent ones wait for a later attempt (as a failing channel's backoff has them do).
        conn.execute(text("UPDATE notifications SET next_attempt_at = :later WHERE status <> 'sent'"),
                     {"later": dt.datetime.now(dt.UTC) + dt.timedelta(days=1)})  # fmt: skip
        enqueue(conn, settings, alert_id=None, kind="test", text="sent today", payload={})
    deliver(engine, settings)

    beat_tick(engine, now=old)
    task_started(engine, "ledger.sync.nightly", now=old)
    task_started(engine, "ledger.retired.task", now=old)
    task_started(engine, "ledger.retired.lately")
    for moment in (kst(40, 10), kst(40, 11), dt.datetime.now(dt.UTC)):
        assert claim(engine, "balances", "1800s", now=moment)
    assert claim(engine, "sync", "0 2 * * *", now=kst(40, 2))
    # Forced: what matters here is that a closed month's frozen figures survive the prune.
    close_month(engine, previous_month(today_kst().replace(day=1)), "retention test", corp_nums=[A, B],
                force_reason="a frozen month for the retention test")  # fmt: skip
    return engine, settings


def answers(engine, settings) -> dict:
    """What reconcile, statements, month close, status, the catch-up and metrics say."""
    this_month = today_kst().replace(day=1)

    def verdicts(reports) -> list:
        return [(r.corp_num, dict(r.open_by_check), r.new, r.resolved, r.closing_checked) for r in reports]

    out = {
        "reconcile": verdicts(reconcile(engine, settings)),
        "reconcile_month": verdicts(reconcile(engine, settings, period=Period.of(month=f"{this_month:%Y-%m}"))),
        "statements": [monthly_statement(engine, corp, month) for corp in (A, B)
                       for month in (previous_month(this_month), this_month)],
        "status": sync_status(engine),
        "overdue": overdue(engine, settings),
    }  # fmt: skip
    with engine.connect() as conn:
        out["discrepancies"] = conn.execute(text(
            "SELECT member_id, check_name, period, fingerprint, expected, actual, difference, description, evidence, "
            "status FROM discrepancies ORDER BY member_id, check_name, period, fingerprint")).all()  # fmt: skip
        out["statement_view"] = conn.execute(text("SELECT * FROM v_monthly_statements ORDER BY corp_num, month")).all()
        out["member_series"] = conn.execute(
            text(READING_SQL), {"cutoff": dt.datetime.now(dt.UTC), "per_member": True, "per_kind": True}
        ).all()
        out["partner_balance"] = conn.execute(text(QUERIES["partner_balance"])).all()
        out["latest_per_member"] = conn.execute(text(
            "SELECT DISTINCT ON (member_id) member_id, balance, taken_at FROM balance_snapshots "
            "WHERE member_id IS NOT NULL ORDER BY member_id, taken_at DESC")).all()  # fmt: skip
        out["last_sync_claim"] = conn.execute(text("SELECT max(slot) FROM schedule_claims WHERE job = 'sync'")).scalar()
    return out


def table(engine, sql: str) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql)).all()


def expected_gone(engine, policy: Policy, now: dt.datetime) -> dict[str, set]:
    """The policy worked out in Python from the rows: the test's own reading of the rules."""
    cut = policy.cutoffs(now)
    runs = table(engine, "SELECT id, member_id, kind, status, started_at FROM sync_runs")
    keep = set()
    for member, kind in {(r.member_id, r.kind) for r in runs}:
        mine = sorted((r for r in runs if (r.member_id, r.kind) == (member, kind)), key=lambda r: (r.started_at, r.id))
        successes = [r.id for r in mine if r.status == "succeeded"]
        listed = [r.id for r in mine if r.status != "skipped"]  # what `ledger status` shows as the last run
        keep |= set(successes[-1:] + listed[-1:])
    gone_runs = {r.id for r in runs if r.started_at < cut.runs_before and r.status != "running" and r.id not in keep}

    readings = table(engine, "SELECT id, member_id, corp_num, taken_at FROM balance_snapshots")
    succeeded = {}
    for r in runs:
        if r.kind == "usage" and r.status == "succeeded":
            succeeded[r.member_id] = max(succeeded.get(r.member_id, r.started_at), r.started_at)
    gone_readings = set()
    for subject in {(r.member_id, r.corp_num if r.member_id is None else None) for r in readings}:
        mine = sorted((r for r in readings if (r.member_id, r.corp_num if r.member_id is None else None) == subject),
                      key=lambda r: (r.taken_at, r.id))  # fmt: skip
        since = succeeded.get(subject[0])
        after = [r.taken_at for r in mine if since is not None and r.taken_at >= since]
        reconciled = min(after) if after else None
        last_of_day = {}
        for r in mine:
            last_of_day[r.taken_at.astimezone(KST).date()] = r.id
        for r in mine:
            if r.taken_at == reconciled or r is mine[-1]:
                continue
            if r.taken_at < cut.snapshots_before or (r.taken_at < cut.thin_before and r.id not in last_of_day.values()):
                gone_readings.add(r.id)

    sent = table(engine, "SELECT id, status, sent_at FROM notifications")
    beats = table(engine, "SELECT name, started_at, finished_at FROM heartbeats")
    claims = table(engine, "SELECT job, slot FROM schedule_claims")
    newest = {job: max(c.slot for c in claims if c.job == job) for job in {c.job for c in claims}}
    return {
        "sync_runs": gone_runs,
        "balance_snapshots": gone_readings,
        "notifications": {n.id for n in sent if n.status == "sent" and n.sent_at < cut.sent_before},
        "heartbeats": {h.name for h in beats if h.name not in KEPT_HEARTBEATS
                       and max(t for t in (h.started_at, h.finished_at) if t) < cut.heartbeats_before},
        "schedule_claims": {(c.job, c.slot) for c in claims if c.slot < cut.claims_before and c.slot < newest[c.job]},
    }  # fmt: skip


KEYS = {"sync_runs": "id", "balance_snapshots": "id", "notifications": "id", "heartbeats": "name",
        "schedule_claims": "job, slot"}  # fmt: skip


def keys(engine) -> dict[str, set]:
    return {
        t: {tuple(r) if len(r) > 1 else r[0] for r in table(engine, f"SELECT {k} FROM {t}")} for t, k in KEYS.items()
    }


def test_prune_deletes_what_the_policy_lets_go_and_every_answer_stays_the_same(world):
    engine, settings = world
    answers(engine, settings)  # the first reconcile records the discrepancies; the second finds them again
    before_answers = answers(engine, settings)
    before = keys(engine)
    now = dt.datetime.now(dt.UTC)
    gone = expected_gone(engine, POLICY, now)

    dry = prune(engine, POLICY, now=now, dry_run=True)
    assert keys(engine) == before, "a dry run deletes nothing"
    report = prune(engine, POLICY, now=now)
    after = keys(engine)

    for name in KEYS:
        assert before[name] - after[name] == gone[name], name
        assert after[name] <= before[name], name
    assert dry.rows_by_table() == report.rows_by_table() == {name: len(gone[name]) for name in KEYS}
    assert report.complete
    # Every kind of row had something to prune, so each rule was put to the test.
    assert all(report.rows_by_table().values()), report.rows_by_table()
    assert {o.rule for o in report.outcomes if o.rows} >= {"runs", "snapshots_thinned", "partner_snapshots_thinned",
                                                           "snapshots_dropped", "partner_snapshots_dropped"}  # fmt: skip

    # What the rules must keep, named one by one.
    runs = {(r.corp_num, r.kind, r.status): r for r in table(engine, """
        SELECT m.corp_num, r.kind, r.status, r.started_at FROM sync_runs r JOIN members m ON m.id = r.member_id""")}  # fmt: skip
    assert runs[(A, "usage", "succeeded")].started_at < kst(99, 0), "A's last usage success, long ago, stays"
    assert runs[(A, "usage", "failed")].started_at < kst(94, 0), "A's last usage run, long ago, stays"
    assert (B, "payments", "running") in runs, "a run still marked running stays"
    assert (B, "refunds", "skipped") not in runs
    kept_readings = {
        (r.corp_num, r.taken_at) for r in table(engine, "SELECT corp_num, taken_at FROM balance_snapshots")
    }
    assert (A, kst(100, 10)) in kept_readings, "the reading reconcile compares A's ledger with stays"
    assert (B, kst(100, 10)) not in kept_readings and (B, kst(100, 12)) not in kept_readings
    assert (C, kst(39, 9)) in kept_readings, "C's latest reading stays"
    # Days are Korean: 23:30 and 00:10 the next day are one UTC day, and two Korean ones.
    assert {(B, kst(40, 23, 30)), (B, kst(39, 9))} <= kept_readings, "the last reading of each Korean day stays"
    assert not {(B, kst(40, 10)), (B, kst(40, 14)), (B, kst(39, 0, 10))} & kept_readings
    texts = {(r.text, r.status) for r in table(engine, "SELECT text, status FROM notifications")}
    assert {("sent long ago", "failed"), ("never sent", "pending"), ("sent today", "sent")} <= texts
    assert ("sent long ago", "sent") not in texts
    assert {"beat", "task:ledger.sync.nightly", "task:ledger.retired.lately"} <= after["heartbeats"]

    assert answers(engine, settings) == before_answers

    again = prune(engine, POLICY, now=now)
    assert sum(again.rows_by_table().values()) == 0, "a second prune finds nothing more"
