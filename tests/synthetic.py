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
