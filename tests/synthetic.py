"""A synthetic ledger generated inside PostgreSQL (generate_series), for plans and benchmarks at
sizes the simulator would take minutes to serve: members with usage rows whose balance chain
adds up (a 500-point charge every 50th row, 10-point uses in between), spread over months, and
one settled deposit per member and month."""

from __future__ import annotations

from sqlalchemy import Connection, text

FIRST_CORP_NUM = 9_000_000_000  # ten digits, clear of the simulator's members


def fill(conn: Connection, *, members: int, rows_per_member: int, months: int = 12, start: str = "2025-01-01") -> None:
    """Add `members` members with `rows_per_member` usages each over `months` Korean months."""
    # The foreign-key triggers would cost a lookup per row; the rows reference members made here.
    conn.execute(text("SET LOCAL session_replication_role = replica"))
    conn.execute(
        text("INSERT INTO members (corp_num, name) SELECT (:first + i)::text, 'member ' || i "
             "FROM generate_series(1, :n) i"), {"first": FIRST_CORP_NUM, "n": members},
    )  # fmt: skip
    params = {"first": FIRST_CORP_NUM, "rows": rows_per_member, "months": months, "start": start}
    conn.execute(
        text("""
        INSERT INTO usages (member_id, row_key, tx_dt, item_code, tx_type, tx_point, balance, raw)
        SELECT m.id, md5(m.id || ':' || k)::uuid,
               (:start)::timestamp AT TIME ZONE 'Asia/Seoul'
                   + (k * (:months * interval '30 days') / :rows),
               CASE WHEN k % 50 = 0 THEN 0 ELSE 150 + k % 4 END,
               CASE WHEN k % 50 = 0 THEN 1 ELSE 2 END,
               CASE WHEN k % 50 = 0 THEN 500 ELSE 10 END,
               100000 + 500 * (k / 50 + 1) - 10 * (k + 1 - (k / 50 + 1)),
               '{}'::jsonb
        FROM members m CROSS JOIN generate_series(0, :rows - 1) k
        WHERE m.corp_num::bigint > :first
        """), params,
    )  # fmt: skip
    conn.execute(
        text("""
        INSERT INTO payments (member_id, row_key, reg_dt, state_dt, settle_state, settle_cost, settle_point, raw)
        SELECT m.id, md5('payment:' || m.id || ':' || j)::uuid,
               ((:start)::timestamp + j * interval '1 month' + interval '1 day') AT TIME ZONE 'Asia/Seoul',
               ((:start)::timestamp + j * interval '1 month' + interval '2 days') AT TIME ZONE 'Asia/Seoul',
               2, 5500, 5000, '{}'::jsonb
        FROM members m CROSS JOIN generate_series(0, :months - 1) j
        WHERE m.corp_num::bigint > :first
        """), params,
    )  # fmt: skip
    conn.execute(text("ANALYZE members"))
    conn.execute(text("ANALYZE usages"))
    conn.execute(text("ANALYZE payments"))


def shadow_with_0004_views(conn: Connection) -> None:
    """Temporary views with 0004's definitions (group, then filter), named like the real ones:
    `pg_temp.v_...` is the old definition, `public.v_...` the current one, on this connection."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "migrations/versions/0004_item_codes_month_closes_and_money_views.py"
    spec = importlib.util.spec_from_file_location("migration_0004", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in module.DEPENDENT_ORDER:
        conn.execute(text(f"CREATE TEMPORARY VIEW {name} AS {module.VIEWS[name][0]}"))


# make_reconcilable's troubles, by member id: (statement, what reconcile should find)
_TROUBLES = [
    # a dropped row (2025-06-16 KST) and a doubled one (2025-06-23): balance_chain
    "DELETE FROM usages u USING ours m WHERE u.member_id = m.id AND m.id % 50 = 7 "
    "AND u.row_key = md5(m.id || ':' || 230)::uuid",
    "INSERT INTO usages (member_id, row_key, occurrence, tx_dt, item_code, tx_type, tx_point, balance, raw) "
    "SELECT u.member_id, u.row_key, 1, u.tx_dt, u.item_code, u.tx_type, u.tx_point, u.balance, u.raw "
    "FROM usages u JOIN ours m ON u.member_id = m.id WHERE m.id % 50 = 13 AND u.row_key = md5(m.id || ':' || 240)::uuid",
    # the deposit of 2025-06-30's charge is missing: credit_without_deposit
    "DELETE FROM payments p USING ours m, usages u WHERE p.member_id = m.id AND m.id % 100 = 21 "
    "AND u.member_id = m.id AND u.row_key = md5(m.id || ':' || 250)::uuid AND p.row_key = md5('deposit:' || u.id)::uuid",
    # a settled deposit with no credit: deposit_without_credit; an old pending one: pending_aging
    "INSERT INTO payments (member_id, row_key, reg_dt, state_dt, settle_state, settle_cost, settle_point, raw) "
    "SELECT id, md5('orphan:' || id)::uuid, '2025-06-15 10:00+09', '2025-06-15 11:00+09', 2, 777, 777, '{}' "
    "FROM ours WHERE id % 100 = 37",
    "INSERT INTO payments (member_id, row_key, reg_dt, state_dt, settle_state, settle_cost, settle_point, raw) "
    "SELECT id, md5('pending:' || id)::uuid, '2025-06-10 10:00+09', NULL, 1, 1100, 1000, '{}' FROM ours WHERE id % 200 = 3",
    # a use that tx_types calls a bonus: tx_sign
    "UPDATE usages u SET tx_type = 3 FROM ours m WHERE u.member_id = m.id AND m.id % 100 = 77 "
    "AND u.row_key = md5(m.id || ':' || 235)::uuid",
    # a refund debit with its refund (clean), and a refund whose debit is missing: refund_without_debit
    "UPDATE usages u SET tx_type = 4 FROM ours m WHERE u.member_id = m.id AND m.id % 100 = 91 "
    "AND u.row_key = md5(m.id || ':' || 220)::uuid",
    "INSERT INTO refunds (member_id, row_key, req_dt, state, request_point, raw) "
    "SELECT u.member_id, md5('refund:' || u.id)::uuid, u.tx_dt - interval '1 day', 2, 10, '{}' "
    "FROM usages u JOIN ours m ON u.member_id = m.id WHERE m.id % 100 = 91 AND u.row_key = md5(m.id || ':' || 220)::uuid",
    "INSERT INTO refunds (member_id, row_key, req_dt, state, request_point, raw) "
    "SELECT id, md5('lost refund:' || id)::uuid, '2025-06-12 09:00+09', 2, 3000, '{}' FROM ours WHERE id % 100 = 43",
    # a quarantined row: quarantined_row
    "INSERT INTO quarantined_rows (member_id, kind, fingerprint, reason, payload, payload_chars) "
    "SELECT id, 'usage', md5('bad:' || id)::uuid, 'txDT is not a date', '{\"txDT\": \"x\"}', 13 FROM ours WHERE id % 500 = 9",
]


def make_reconcilable(conn: Connection, *, first_corp_num: int = FIRST_CORP_NUM) -> None:
    """Turn fill()'s ledger into one a reconciliation mostly passes, with a few members of each
    kind of trouble (chosen by member id), for benchmarks of `ledger reconcile`: a settled
    deposit for every charge row; for nine members in ten, succeeded syncs and a balance reading
    that matches (one in a hundred is off: closing_balance; the tenth has never synced:
    sync_stale); then the _TROUBLES above. Call refresh_syncs() before each run: the sync times
    must be recent for the ledger not to be stale."""
    conn.execute(text("SET LOCAL session_replication_role = replica"))
    conn.execute(
        text("CREATE TEMPORARY TABLE ours ON COMMIT DROP AS SELECT id FROM members WHERE corp_num::bigint > :first"),
        {"first": first_corp_num},
    )
    conn.execute(text("DELETE FROM payments p USING ours m WHERE p.member_id = m.id"))
    conn.execute(
        text("INSERT INTO payments (member_id, row_key, reg_dt, state_dt, settle_state, settle_cost, settle_point, raw) "
             "SELECT u.member_id, md5('deposit:' || u.id)::uuid, u.tx_dt - interval '1 hour', u.tx_dt, 2, 550, 500, '{}' "
             "FROM usages u JOIN ours m ON u.member_id = m.id WHERE u.tx_type = 1")
    )  # fmt: skip
    conn.execute(
        text("INSERT INTO sync_states (member_id, kind, last_success_at) SELECT m.id, k.kind, now() FROM ours m "
             "CROSS JOIN (VALUES ('payments'), ('usage'), ('refunds')) k(kind) WHERE m.id % 10 <> 0")
    )  # fmt: skip
    conn.execute(
        text("INSERT INTO sync_runs (member_id, kind, status, started_at, finished_at) "
             "SELECT id, 'usage', 'succeeded', '2025-12-27 12:00+09', '2025-12-27 12:01+09' FROM ours WHERE id % 10 <> 0")
    )  # fmt: skip
    for statement in _TROUBLES:
        conn.execute(text(statement))
    conn.execute(
        text("INSERT INTO balance_snapshots (subject, member_id, corp_num, balance, taken_at) "
             "SELECT 'member', m.id, mm.corp_num, last.balance + CASE WHEN m.id % 100 = 55 THEN 1 ELSE 0 END, "
             "'2025-12-27 13:00+09' FROM ours m JOIN members mm ON mm.id = m.id "
             "CROSS JOIN LATERAL (SELECT balance FROM usages u WHERE u.member_id = m.id "
             "ORDER BY tx_dt DESC, id DESC LIMIT 1) last WHERE m.id % 10 <> 0")
    )  # fmt: skip
    for table in ("usages", "payments", "refunds", "sync_states", "sync_runs", "balance_snapshots"):
        conn.execute(text(f"ANALYZE {table}"))


def refresh_syncs(conn: Connection, *, first_corp_num: int = FIRST_CORP_NUM) -> None:
    """The synced members' last successful syncs are now, so their ledgers are not stale."""
    conn.execute(
        text("UPDATE sync_states s SET last_success_at = now() FROM members m "
             "WHERE m.id = s.member_id AND m.corp_num::bigint > :first"), {"first": first_corp_num},
    )  # fmt: skip
