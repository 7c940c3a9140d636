"""Reconciling members in batches finds exactly what reconciling each member on its own finds:
the same discrepancies (keys, figures, descriptions, evidence, status), the same reports, over
members with varied broken ledgers, for a full run, a month and a day, and on a re-run that
resolves some findings, reopens others and finds new ones."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from ledger.kst import KST
from ledger.reconcile import service
from ledger.reconcile.service import Period, reconcile
from tests.synthetic import FIRST_CORP_NUM, fill, make_reconcilable

MEMBERS = 100  # member ids 1-100 reach every kind of trouble make_reconcilable makes
ROWS = 260  # its troubles sit at rows 220-250 of each member; with 260 rows, in November 2025
COLUMNS = ("member_id, check_name, period, fingerprint, expected, actual, difference, description, evidence, "
           "status, first_seen_at, last_seen_at, resolved_at")  # fmt: skip


@pytest.fixture
def ledger(committed, db_settings):
    with committed.begin() as conn:
        fill(conn, members=MEMBERS, rows_per_member=ROWS)
        make_reconcilable(conn)
        # A member with no usage at all, and one whose only rows are outside the month.
        conn.execute(text("INSERT INTO members (corp_num, name) VALUES (:c, 'no rows')"), {"c": str(FIRST_CORP_NUM)})
        conn.execute(text("DELETE FROM usages WHERE member_id = 5 AND tx_dt >= '2025-10-01'"))
    yield committed, db_settings
    with committed.begin() as conn:  # the copy save() made: not a ledger table, so no test removes it
        conn.execute(text("DROP TABLE IF EXISTS saved_discrepancies"))


def discrepancies(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT {COLUMNS} FROM discrepancies ORDER BY {COLUMNS}"))]


def reports_of(reports) -> list[tuple]:
    return sorted((r.corp_num, dict(r.open_by_check), r.new, r.resolved, r.closing_checked) for r in reports)


def run(engine, settings, period, now, monkeypatch, batch: int):
    monkeypatch.setattr(service, "BATCH_MEMBERS", batch)
    return reconcile(engine, settings, period=period, now=now)


def save(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS saved_discrepancies"))
        conn.execute(text("CREATE TABLE saved_discrepancies AS SELECT * FROM discrepancies"))


def restore(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM discrepancies"))
        conn.execute(text("INSERT INTO discrepancies SELECT * FROM saved_discrepancies"))


def change_the_ledger(engine) -> None:
    """Repair member 7's dropped row (its balance_chain resolves), break member 8's chain (a new
    finding), and let member 10 sync (its sync_stale findings resolve)."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO usages (member_id, row_key, tx_dt, item_code, tx_type, tx_point, balance, raw) "
            "SELECT 7, md5('7:230')::uuid, tx_dt + interval '1 second', 150, 2, 10, balance - 10, '{}' "
            "FROM usages WHERE member_id = 7 AND row_key = md5('7:229')::uuid"))  # fmt: skip
        conn.execute(
            text("UPDATE usages SET balance = balance + 1 WHERE member_id = 8 AND row_key = md5('8:231')::uuid")
        )
        conn.execute(text("INSERT INTO sync_states (member_id, kind, last_success_at) "
                          "SELECT 10, kind, now() FROM (VALUES ('payments'), ('usage'), ('refunds')) k(kind)"))  # fmt: skip


@pytest.mark.parametrize(
    "period",
    [Period.of(), Period.of(month="2025-11"), Period.of(day=dt.date(2025, 11, 16))],
    ids=lambda p: p.label,
)
def test_batches_find_what_one_member_at_a_time_finds(ledger, period, monkeypatch):
    engine, settings = ledger
    now = dt.datetime.now(KST)
    # Batches of 7: many batches, members with and without rows in each. Batches of one member
    # read and write each member on its own, as the reconciliation did before batches.
    batched = run(engine, settings, period, now, monkeypatch, 7)
    found = discrepancies(engine)
    assert {"balance_chain", "sync_stale", "quarantined_row"} <= {r[1] for r in found}
    if period.label == "all":
        assert {"closing_balance", "tx_sign", "deposit_without_credit", "credit_without_deposit",
                "refund_without_debit", "pending_aging"} <= {r[1] for r in found}  # fmt: skip
        assert sum(r.closing_checked for r in batched) > MEMBERS // 2
    save(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM discrepancies"))
    single = run(engine, settings, period, now, monkeypatch, 1)
    assert discrepancies(engine) == found
    assert reports_of(single) == reports_of(batched)

    # A later run: some findings resolve, one is new, one reopens (member 10's sync_stale was
    # resolved before the first run reopened it: mark it resolved to reach that path).
    with engine.begin() as conn:
        conn.execute(text("UPDATE saved_discrepancies SET status = 'resolved', resolved_at = :now "
                          "WHERE member_id = 20 AND check_name = 'sync_stale'"), {"now": now})  # fmt: skip
    change_the_ledger(engine)
    later = now + dt.timedelta(minutes=5)
    restore(engine)
    batched = run(engine, settings, period, later, monkeypatch, 500)  # all in one batch
    found = discrepancies(engine)
    restore(engine)
    single = run(engine, settings, period, later, monkeypatch, 1)
    assert discrepancies(engine) == found
    assert reports_of(single) == reports_of(batched)
    assert any(r.resolved for r in batched) and any(r.new for r in batched)
