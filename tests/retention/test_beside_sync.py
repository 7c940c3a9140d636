"""The prune runs beside a sync and a balance check without either waiting on the other, gives a
table up within its lock timeout rather than queue behind a lock, and deletes in bounded
batches that each commit on their own."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger.alerts.service import check_balances
from ledger.db.engine import make_engine
from ledger.kst import KST, today_kst
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.retention import service
from ledger.retention.policy import Policy
from ledger.retention.rules import RUNS, THIN_MEMBERS
from ledger.retention.service import bounds_for, delete_batch, params_for, prune
from ledger.simulator import Simulator
from ledger.sync.service import sync_member_kinds
from tests.conftest import client_settings, small_config
from tests.sync.helpers import assert_ledger_equals_truth
from tests.waiting import wait_for

A = "1234567890"


def kst(days_ago: int, hour: int) -> dt.datetime:
    return dt.datetime.combine(today_kst() - dt.timedelta(days=days_ago), dt.time(hour), tzinfo=KST)


def count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=30)) as simulator:
        yield simulator


@pytest.fixture
def synced(committed, sim):
    """A synced twice (its first runs aged 100 days: prunable) with readings 40 days old (thinnable)."""
    engine, settings = committed, client_settings(sim)
    with Session(engine) as session:
        add_member(session, MemberInput(A))
        session.commit()
    with PopbillClient(settings) as client:
        first = sync_member_kinds(engine, client, A, today=sim.world.today())
        assert all(r.status == "succeeded" for r in first)
        assert all(r.status == "succeeded" for r in sync_member_kinds(engine, client, A, today=sim.world.today()))
        for hour in (9, 12, 15, 18):
            check_balances(engine, client, settings, now=kst(40, hour).astimezone(dt.UTC))
        with engine.begin() as conn:
            conn.execute(text("UPDATE sync_runs SET started_at = :s, finished_at = :s WHERE id = ANY(:ids)"),
                         {"s": kst(100, 2), "ids": [r.run_id for r in first]})  # fmt: skip
        yield engine, client, settings


def test_prune_completes_while_a_sync_holds_its_transaction_open(synced, sim):
    engine, client, _ = synced
    blocker = engine.connect()
    # Holding A's sync states keeps the sync's next write (a page, or its close) waiting, with
    # its transaction open, until the test lets go.
    blocker.execute(text("SELECT 1 FROM sync_states s JOIN members m ON m.id = s.member_id "
                         "WHERE m.corp_num = :c FOR UPDATE OF s"), {"c": A})  # fmt: skip
    blocker_pid = blocker.execute(text("SELECT pg_backend_pid()")).scalar()
    results = []
    syncing = threading.Thread(
        target=lambda: results.extend(sync_member_kinds(engine, client, A, today=sim.world.today()))
    )
    syncing.start()
    try:
        waiting = text("SELECT query FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")

        def sync_waits() -> bool:
            return bool(count(engine, "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))",
                              pid=blocker_pid))  # fmt: skip

        wait_for(sync_waits, timeout=60, what="the sync to wait inside its transaction")
        with engine.connect() as conn:
            assert "sync_states" in conn.execute(waiting, {"pid": blocker_pid}).scalar()

        report = prune(engine, Policy(batch_rows=3))
        assert report.complete, [o.stopped for o in report.outcomes]
        assert report.rows_by_table()["sync_runs"] == 3  # the aged first runs
        assert report.rows_by_table()["balance_snapshots"] == 2 * 3  # member's and partner's: 3 of 4 a day
        assert syncing.is_alive(), "the sync was still held while the prune ran"
    finally:
        blocker.rollback()
        blocker.close()
        syncing.join(timeout=120)
    assert not syncing.is_alive()
    assert [r.status for r in results] == ["succeeded"] * 3
    assert_ledger_equals_truth(engine, sim, [A])


def test_sync_and_balance_check_complete_while_a_prune_batch_holds_its_locks(synced, sim, db_settings):
    engine, client, settings = synced
    member_id = count(engine, "SELECT id FROM members WHERE corp_num = :c", c=A)
    cutoffs = Policy().cutoffs(dt.datetime.now(dt.UTC))
    held = engine.connect()
    # Either would fail with LockNotAvailable (lock_timeout) rather than wait on the batch.
    impatient = make_engine(db_settings, connect_args={"options": "-c lock_timeout=3000"})
    try:
        runs = delete_batch(held, RUNS, params_for(RUNS, bounds_for(RUNS, cutoffs), [member_id]), 100)
        readings = delete_batch(
            held, THIN_MEMBERS, params_for(THIN_MEMBERS, bounds_for(THIN_MEMBERS, cutoffs), [member_id]), 100
        )
        assert (runs.deleted, readings.deleted) == (3, 3), "the open batch holds A's old runs and readings"
        results = sync_member_kinds(impatient, client, A, today=sim.world.today())
        assert [r.status for r in results] == ["succeeded"] * 3, [r.error for r in results]
        readings_now = check_balances(impatient, client, settings)
        assert all(r.balance is not None for r in readings_now)
        held.commit()
    finally:
        held.close()
        impatient.dispose()
    assert count(engine, "SELECT count(*) FROM sync_runs WHERE started_at < :t", t=kst(90, 0)) == 0
    assert count(engine, "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'") == 6
    assert_ledger_equals_truth(engine, sim, [A])


def test_a_table_lock_stops_that_rule_within_the_lock_timeout_and_the_others_go_on(synced):
    engine, _, _ = synced
    blocker = engine.connect()
    blocker.execute(text("LOCK TABLE sync_runs IN SHARE MODE"))  # as CREATE INDEX without CONCURRENTLY does
    try:
        report = prune(engine, Policy())
    finally:
        blocker.rollback()
        blocker.close()
    stopped = {o.rule: o.stopped for o in report.outcomes if o.stopped}
    assert list(stopped) == ["runs"] and "lock" in stopped["runs"]
    assert not report.complete
    assert report.rows_by_table()["balance_snapshots"] == 6, "the other rules still ran"
    assert prune(engine, Policy()).rows_by_table()["sync_runs"] == 3, "the next run goes on"


def test_batches_are_bounded_and_each_commits_on_its_own(committed, monkeypatch):
    engine = committed
    monkeypatch.setattr(service, "MEMBERS_PER_CHUNK", 2)  # five members: chunks of 2, 2 and 1
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO members (corp_num) SELECT (1000000000 + g)::text FROM generate_series(1, 5) g"))
        # Per member: 11 finished runs per kind 100 days ago (the last of each kind stays) and
        # 20 readings on one day 40 days ago (the last stays, and so does the first: the one
        # reconcile reads, taken after the last successful usage run).
        conn.execute(text("""
            INSERT INTO sync_runs (member_id, kind, status, started_at, finished_at)
            SELECT m.id, k, 'succeeded', :old + g * interval '1 hour', :old + g * interval '1 hour'
            FROM members m CROSS JOIN unnest(ARRAY['payments', 'usage', 'refunds']) k CROSS JOIN generate_series(1, 11) g
        """), {"old": kst(100, 0)})  # fmt: skip
        conn.execute(text("""
            INSERT INTO balance_snapshots (subject, member_id, corp_num, balance, taken_at)
            SELECT 'member', m.id, m.corp_num, 1000 + g, :old + g * interval '10 minutes'
            FROM members m CROSS JOIN generate_series(1, 20) g
        """), {"old": kst(40, 9)})  # fmt: skip
    tables = {"runs": "sync_runs", "snapshots_thinned": "balance_snapshots"}
    start = {rule: count(engine, f"SELECT count(*) FROM {table}") for rule, table in tables.items()}
    seen = []

    def after_batch(outcome, deleted: int) -> None:
        # Another session already sees the batch's rows gone: it committed on its own.
        if outcome.rule in tables:
            seen.append((outcome.rule, deleted))
            assert count(engine, f"SELECT count(*) FROM {tables[outcome.rule]}") == start[outcome.rule] - outcome.rows

    report = prune(engine, Policy(batch_rows=7), progress=after_batch)
    by_rule = {o.rule: o for o in report.outcomes}
    assert by_rule["runs"].rows == 5 * 3 * 10 and by_rule["snapshots_thinned"].rows == 5 * 18
    for rule in tables:
        sizes = [n for r, n in seen if r == rule]
        assert max(sizes) == 7 == by_rule[rule].largest_batch, sizes
        assert sum(sizes) == by_rule[rule].rows and len(sizes) == by_rule[rule].batches
        # Full batches, and at most two short ones per member (its own, and its chunk's before
        # the chunk was halved): the work grows with the rows, never with rows x members.
        assert len(sizes) <= by_rule[rule].rows // 7 + 2 * 5, sizes


def test_a_reading_another_transaction_holds_is_left_for_the_next_run(synced):
    engine, _, _ = synced
    holder = engine.connect()
    held = holder.execute(
        text("""
        SELECT id FROM balance_snapshots WHERE member_id IS NOT NULL AND taken_at < now() - interval '35 days'
        ORDER BY taken_at LIMIT 1 FOR UPDATE"""),  # fmt: skip
    ).scalar()
    try:
        first = prune(engine, Policy())
    finally:
        holder.rollback()
        holder.close()
    thinned = next(o for o in first.outcomes if o.rule == "snapshots_thinned")
    assert (thinned.rows, thinned.held) == (2, 1), "skipped, not waited for"
    assert first.complete
    with engine.connect() as conn:
        marks = dict(conn.execute(text("SELECT rule, done_before FROM retention_marks")).all())
    # The partner's thinning finished, so its next run starts at its cutoff; the members' did not.
    assert marks == {"partner_snapshots_thinned": first.cutoffs.thin_before}
    second = prune(engine, Policy())
    assert next(o for o in second.outcomes if o.rule == "snapshots_thinned").rows == 1
    assert count(engine, "SELECT count(*) FROM balance_snapshots WHERE id = :id", id=held) == 0
    with engine.connect() as conn:
        marks = dict(conn.execute(text("SELECT rule, done_before FROM retention_marks")).all())
    assert marks == {"partner_snapshots_thinned": first.cutoffs.thin_before,
                     "snapshots_thinned": first.cutoffs.thin_before}  # fmt: skip
