"""Does an index on usages (tx_dt) pay? The all-members month of v_usage_daily and v_usage_signed
against the cost of one more index on every usage write, side by side on the same data.

    python bench/tx_dt_index_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB
                                      [--rows 200000] [--rounds 3] [--month 2025-06]

DB: a database built by `bench/views_bench.py --keep` (10,000 members, 5,000,000 usages). The
candidate indexes (a btree and a BRIN on tx_dt) are created once, and dropped at the end; each
measurement runs in a transaction that first drops the candidates it goes without and is then
rolled back, so the variants alternate on the same table, cache and data, and nothing stays.

Reads: the server's execution time (EXPLAIN ANALYZE, TIMING OFF) of each view's all-members
month and one member-month. Writes: `--rows` new usage rows (tomorrow's rows for the bench's
members, in time order, as the nightly sync writes them) through the sync's two paths, COPY
straight into usages and COPY into a temporary table merged with INSERT ... ON CONFLICT
(ledger.history.writer's statements), timed on the client around the statements (the work
is the server's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger.history.writer import USAGE_COLUMNS  # noqa: E402

CANDIDATES = {
    "bench_usages_tx_dt": "CREATE INDEX bench_usages_tx_dt ON usages (tx_dt)",
    "bench_usages_tx_dt_brin": "CREATE INDEX bench_usages_tx_dt_brin ON usages USING brin (tx_dt)",
}
VARIANTS = {"none": (), "btree": ("bench_usages_tx_dt",), "brin": ("bench_usages_tx_dt_brin",)}
COLUMNS = ", ".join(USAGE_COLUMNS)
MERGE = f"""
    WITH merged AS (
        INSERT INTO usages ({COLUMNS}, first_seen_at, last_seen_at)
        SELECT {COLUMNS}, now(), now() FROM usages_incoming
        ON CONFLICT (member_id, row_key, occurrence) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
        RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted), count(*) FROM merged
"""


def payload(conn, rows: int) -> str:
    """COPY text of `rows` new usage rows after the ledger's last, members taking turns in time order."""
    last = conn.execute(text("SELECT max(tx_dt) FROM usages")).scalar()
    members = conn.execute(text("SELECT id FROM members ORDER BY id")).scalars().all()
    lines = []
    for i in range(rows):
        at = last + dt.timedelta(seconds=1 + i * 86400 // rows)
        member = members[i % len(members)]
        lines.append("\t".join((str(member), str(uuid.uuid4()), "0", at.isoformat(), "151", "2", "10", "1000",
                                "\\N", "\\N", "\\N", '{"bench": true}')))  # fmt: skip
    return "\n".join(lines) + "\n"


def without(conn, variant: str) -> None:
    for name in CANDIDATES:
        if name not in VARIANTS[variant]:
            conn.execute(text(f"DROP INDEX {name}"))


def write_once(engine, variant: str, path: str, data: str) -> float:
    with engine.connect() as conn:
        transaction = conn.begin()
        without(conn, variant)
        if path == "merge":
            conn.execute(text("CREATE TEMP TABLE usages_incoming (LIKE usages INCLUDING DEFAULTS) ON COMMIT DROP"))
        raw = conn.connection.driver_connection
        started = time.perf_counter()
        with raw.cursor().copy(
            f"COPY {'usages_incoming' if path == 'merge' else 'usages'} ({COLUMNS}) FROM STDIN"
        ) as copy:
            copy.write(data)
        if path == "merge":
            conn.execute(text(MERGE)).one()
        elapsed = time.perf_counter() - started
        transaction.rollback()
    return elapsed


def read_once(engine, variant: str, query: str, params: dict) -> tuple[float, str]:
    with engine.connect() as conn:
        transaction = conn.begin()
        without(conn, variant)
        (document,) = conn.execute(text(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {query}"), params).scalar_one()
        transaction.rollback()
    return document["Execution Time"], _usage_access(document["Plan"])


def _usage_access(plan: dict) -> str:
    """How the plan reads usages: the scan kinds, outermost first."""
    found = []
    if plan.get("Relation Name") == "usages":
        found.append(plan["Node Type"] + (f" {plan['Index Name']}" if plan.get("Index Name") else ""))
    for child in plan.get("Plans", []):
        found += _usage_access(child).split(", ") if _usage_access(child) else []
    return ", ".join(dict.fromkeys(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=200_000, help="usage rows per write measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--month", default="2025-06")
    args = parser.parse_args()
    engine = create_engine(args.database_url)
    month = dt.date.fromisoformat(f"{args.month}-01")
    following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    kst = dt.timezone(dt.timedelta(hours=9))
    with engine.connect() as conn:
        member = conn.execute(text("SELECT id, corp_num FROM members ORDER BY id OFFSET 5000 LIMIT 1")).one()
        data = payload(conn, args.rows)
    params = {"m": month, "next": following, "start": dt.datetime.combine(month, dt.time(), kst),
              "end": dt.datetime.combine(following, dt.time(), kst), "c": member.corp_num, "id": member.id}  # fmt: skip
    queries = {
        ("v_usage_daily", "all members, month"): "SELECT * FROM v_usage_daily WHERE day >= :m AND day < :next",
        ("v_usage_daily", "one member-month"): "SELECT * FROM v_usage_daily WHERE corp_num = :c AND day >= :m AND day < :next",
        ("v_usage_signed", "all members, month"): "SELECT * FROM v_usage_signed WHERE tx_dt >= :start AND tx_dt < :end",
        ("v_usage_signed", "one member-month"): "SELECT * FROM v_usage_signed WHERE member_id = :id "
        "AND tx_dt >= :start AND tx_dt < :end",
    }  # fmt: skip
    try:
        builds = {}
        with engine.connect() as conn:
            for name, ddl in CANDIDATES.items():
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
                started = time.perf_counter()
                conn.execute(text(ddl))
                builds[name] = (time.perf_counter() - started,
                                conn.execute(text("SELECT pg_relation_size(:n)"), {"n": name}).scalar())  # fmt: skip
            conn.execute(text("ANALYZE usages"))
            conn.commit()
        for name, (seconds, size) in builds.items():
            print(f"built {name}: {seconds:.1f} s, {size / 2**20:.1f} MiB")

        reads: dict = {}
        writes: dict = {}
        for round_ in range(args.rounds):
            for variant in VARIANTS if round_ % 2 == 0 else reversed(VARIANTS):
                for key, query in queries.items():
                    ms, access = read_once(engine, variant, query, params)
                    reads.setdefault((key, variant), []).append(ms)
                    reads[(key, variant, "access")] = access
                for path in ("copy", "merge"):
                    writes.setdefault((path, variant), []).append(write_once(engine, variant, path, data))
                print(json.dumps({"round": round_, "variant": variant}), file=sys.stderr, flush=True)

        print(f"\nreads: server execution ms, median of {args.rounds} (min-max); month {args.month}")
        for key in queries:
            for variant in VARIANTS:
                times = reads[(key, variant)]
                print(f"  {key[0]:<15} {key[1]:<19} {variant:<6} {statistics.median(times):>9.1f} "
                      f"({min(times):.1f}-{max(times):.1f})  {reads[(key, variant, 'access')]}")  # fmt: skip
        print(f"\nwrites: {args.rows:,} new rows, seconds (rows/s), median of {args.rounds} (min-max)")
        for path in ("copy", "merge"):
            base = statistics.median(writes[(path, "none")])
            for variant in VARIANTS:
                times = writes[(path, variant)]
                median = statistics.median(times)
                print(f"  {path:<6} {variant:<6} {median:>7.2f} s ({args.rows / median:>9,.0f} rows/s) "
                      f"({min(times):.2f}-{max(times):.2f})  {median / base - 1:+.1%} vs none")  # fmt: skip
    finally:
        with engine.connect() as conn:
            for name in CANDIDATES:
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
            conn.commit()
        engine.dispose()


if __name__ == "__main__":
    main()
