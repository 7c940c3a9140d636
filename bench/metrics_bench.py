"""Metrics scrape benchmark: what one Prometheus scrape of `ledger metrics serve` costs.

    python bench/metrics_bench.py [--members 10000] [--snapshots 48] [--scrapes 5] [--database-url URL]

Builds a database with N members, their three sync states, `snapshots` balance readings each
(a day of half-hourly checks), two alerts each, and some pending items, discrepancies and
notifications; then times whole scrapes (the exposition text, as Prometheus receives it) with
per-member series on and off, side by side. Prints wall time, this process's CPU and the
PostgreSQL backend's CPU, and each query's plan (index use). Goal: a scrape <= 0.5 s at 10,000.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.db import migrate  # noqa: E402
from ledger.db.engine import make_engine  # noqa: E402
from ledger.metrics.ledger_state import PER_MEMBER_SQL, QUERIES, SYNC_AGES_SQL, ledger_tables, render  # noqa: E402
from ledger.secret import Secret  # noqa: E402
from ledger.settings import Settings  # noqa: E402

FILL = [
    """INSERT INTO members (corp_num, name, low_balance_threshold)
       SELECT (1000000000 + g)::text, 'member ' || g, CASE WHEN g % 10 = 0 THEN 5000 END
       FROM generate_series(1, :members) g""",
    """INSERT INTO sync_states (member_id, kind, last_success_at)
       SELECT m.id, k, now() - (m.id % 90) * interval '1 hour'
       FROM members m CROSS JOIN unnest(ARRAY['payments', 'usage', 'refunds']) k""",
    """INSERT INTO balance_snapshots (subject, member_id, corp_num, balance, taken_at)
       SELECT 'member', m.id, m.corp_num, (m.id * 37 + s) % 100000 + 0.5, now() - s * interval '30 minutes'
       FROM members m CROSS JOIN generate_series(1, :snapshots) s""",
    """INSERT INTO balance_snapshots (subject, member_id, corp_num, balance, taken_at)
       SELECT 'partner', NULL, '1000000001', 500000, now() - s * interval '30 minutes' FROM generate_series(1, :snapshots) s""",
    """INSERT INTO alerts (subject, rule, member_id, state)
       SELECT m.corp_num, r, m.id, CASE WHEN m.id % 20 = 0 THEN 'firing' ELSE 'ok' END
       FROM members m CROSS JOIN unnest(ARRAY['low_balance', 'runway']) r""",
    """INSERT INTO tracked_items (member_id, kind, code, state, requested_at)
       SELECT m.id, CASE WHEN m.id % 2 = 0 THEN 'settle' ELSE 'refund' END, 'C' || m.id,
              CASE WHEN m.id % 3 = 0 THEN 'pending' ELSE 'done' END, now() - (m.id % 30) * interval '1 day'
       FROM members m WHERE m.id % 5 = 0""",
    """INSERT INTO discrepancies (member_id, check_name, period, fingerprint, description, evidence, status)
       SELECT m.id, 'balance_chain', 'all', 'f' || m.id, 'bench', '{}'::jsonb,
              CASE WHEN m.id % 2 = 0 THEN 'open' ELSE 'resolved' END
       FROM members m WHERE m.id % 20 = 0""",
    """INSERT INTO notifications (channel, kind, text, payload, status, created_at)
       SELECT (ARRAY['log', 'webhook', 'email'])[1 + g % 3], 'firing', 'bench', '{}'::jsonb,
              CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'sent' END, now() - g * interval '1 minute'
       FROM generate_series(1, 3000) g""",
    """INSERT INTO heartbeats (name, started_at, succeeded_at) VALUES ('beat', now(), NULL),
       ('task:ledger.sync.nightly', now() - interval '20 hours', now() - interval '19 hours')""",
]


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a PostgreSQL backend on this machine (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape_figures(engine, per_member: bool, scrapes: int) -> tuple[list[float], list[float], list[float], int]:
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()  # the pool hands this one back
    render(engine, per_member=per_member)  # warm the pool and the caches, as a running server is
    walls, cpus, server_cpus, size = [], [], [], 0
    for _ in range(scrapes):
        w0, c0, s0 = time.perf_counter(), time.process_time(), backend_cpu(pid)
        size = len(render(engine, per_member=per_member))
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        server_cpus.append(backend_cpu(pid) - s0)
    return walls, cpus, server_cpus, size


def plans(engine) -> None:
    print("\nquery plans (EXPLAIN ANALYZE):")
    with engine.connect() as conn:
        queries = {**QUERIES, "per_member": PER_MEMBER_SQL, "sync_ages": SYNC_AGES_SQL}
        for name, sql in queries.items():
            rows = conn.execute(text("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) " + sql), {"tables": ledger_tables(), "default_threshold": 10000}).scalars().all()
            scans = [r.strip() for r in rows if "Scan" in r]
            total = next((r for r in rows if r.startswith("Execution Time")), "")
            seq = [s for s in scans if s.startswith("Seq Scan") or "-> Seq Scan" in s]
            print(f"  {name:<20} {total:<28} {'; '.join(s.lstrip('-> ').split('  ')[0] for s in scans)}")
            if any("balance_snapshots" in s for s in seq):
                print(f"    !! {name} scans balance_snapshots sequentially")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--snapshots", type=int, default=48)
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="a server to create a scratch database on (named with a random suffix, dropped after)")  # fmt: skip
    args = parser.parse_args()
    server = make_url(args.database_url).set(drivername="postgresql+psycopg")
    name = f"ledger_bench_metrics_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(dataclasses.replace(Settings(), database_url=Secret(url)))
        migrate.upgrade(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            for sql in FILL:
                conn.execute(text(sql), {"members": args.members, "snapshots": args.snapshots})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        with engine.connect() as conn:
            snapshots = conn.execute(text("SELECT count(*) FROM balance_snapshots")).scalar()
        print(f"filled {args.members:,} members, {snapshots:,} balance snapshots in {time.perf_counter() - started:.1f} s")
        print(f"\n{'per-member series':<18} {'wall median':>12} {'wall max':>9} {'our CPU':>8} {'PG CPU':>7} {'bytes':>10}")
        medians = {}
        for per_member in (True, False):
            walls, cpus, server, size = scrape_figures(engine, per_member, args.scrapes)
            medians[per_member] = statistics.median(walls)
            print(f"{'on' if per_member else 'off':<18} {statistics.median(walls):>11.3f}s {max(walls):>8.3f}s "
                  f"{statistics.median(cpus):>7.3f}s {statistics.median(server):>6.2f}s {size:>10,}")  # fmt: skip
        print(f"\nratio on/off: {medians[True] / medians[False]:.1f}x; goal: a scrape <= 0.5 s at 10,000 members "
              f"-> {'met' if medians[True] <= 0.5 else 'NOT met'} ({medians[True]:.3f} s)")  # fmt: skip
        plans(engine)
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


if __name__ == "__main__":
    main()
