"""Retention benchmark: what a night adds to the tables that grow, and what the prune costs.

    nice python bench/retention_bench.py [--members 100000] [--year-members 500] [--days 365]
                                         [--database-url URL] [--skip-night] [--skip-year]

Rows are written as the real code writes them (columns, values, order of insertion), by SQL
for speed:
- sync_runs: 3 a member a night (one per kind, recorded together at the member's start; 0.5%
  failed with an error text);
- balance_snapshots: one per active member and one for the partner per balance check, 48
  checks a day (LEDGER_SCHEDULE_BALANCES=1800s), each check's rows together;
- notifications: one per channel (log, webhook) and rule (low_balance, runway) per check, a
  "still firing" group listing the alerts due for their 4-hourly repeat, with 5% of members
  firing (an assumption: the payload carries every alert of the group, so its size grows with
  the members); plus the nightly discrepancy notice;
- schedule_claims: 1,923 a day (watchdog 60 s, catch-up 300 s, pending poll 600 s, balance
  check 1800 s, sync, reconcile, prune);
- heartbeats: a fixed set of names, upserted: they never grow.

Part 1, at --members: one night's rows and bytes per table (heap + indexes + TOAST). Then the
nightly prune in steady state at that size: the night is dated so that it crosses every cutoff
(runs 91 days old, readings 31 days, notifications 31 days, claims 15 days), beside a recent
night (each member's last runs and latest reading) and a day of one-a-day readings 401 days
old; rows and bytes before and after, the prune's wall and CPU (this process and the
PostgreSQL backend serving it), per rule, the VACUUM autovacuum would then run, and the plans.

Part 2, at --year-members: a simulated year (--days nights) pruned for the first time, then
the next night's prune in steady state (which also rescans what a year left behind); per
member, projected to 100,000 members.

Each part runs in a scratch database (random name, dropped after).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.db import migrate  # noqa: E402
from ledger.db.engine import make_engine  # noqa: E402
from ledger.kst import KST, today_kst  # noqa: E402
from ledger.retention import service  # noqa: E402
from ledger.retention.policy import Policy  # noqa: E402
from ledger.retention.rules import RULES, TABLES  # noqa: E402
from ledger.secret import Secret  # noqa: E402
from ledger.settings import Settings  # noqa: E402

CHECKS_A_DAY = 48
FIRING = 0.05  # of members, per rule
REPEAT_SHARE = 1800 / (4 * 3600)  # of the firing alerts, due for their repeat at each check

MEMBERS = """
    INSERT INTO members (corp_num, name)
    SELECT (1000000000 + g)::text, 'member ' || g FROM generate_series(1, :n) g
"""
HEARTBEATS = """
    INSERT INTO heartbeats (name, started_at, finished_at, succeeded_at, status)
    SELECT n, now(), now(), now(), 'succeeded' FROM unnest(ARRAY['beat', 'task:ledger.sync.nightly',
        'task:ledger.pending.poll', 'task:ledger.alerts.check_balances', 'task:ledger.reconcile.nightly',
        'task:ledger.alerts.deliver', 'task:ledger.retention.prune']) n
"""
# A night's runs: each member's three recorded together at its start (02:00 KST on, 30 ms apart).
RUNS = """
    INSERT INTO sync_runs (member_id, kind, status, started_at, finished_at, window_start, window_end, pages,
                           api_calls, rows_inserted, rows_updated, rows_unchanged, error)
    SELECT m.id, k.kind, CASE WHEN (m.id + k.n) % 200 = 0 THEN 'failed' ELSE 'succeeded' END,
           t.s, t.s + interval '2 seconds', CAST(:day AS date) - 3, CAST(:day AS date), 1, 2, m.id % 7, 0, 20 + m.id % 30,
           CASE WHEN (m.id + k.n) % 200 = 0 THEN 'ServerError: [-99999999] the server answered HTTP 503' END
    FROM members m CROSS JOIN (VALUES (1, 'payments'), (2, 'usage'), (3, 'refunds')) AS k(n, kind)
    CROSS JOIN LATERAL (SELECT (CAST(:day AS date) + time '02:00') AT TIME ZONE 'Asia/Seoul'
                               + m.id * interval '30 milliseconds') AS t(s)
    ORDER BY m.id, k.n
"""
# Balance checks :c0..:c1 of a day: every member's reading, then the partner's, check by check.
READINGS = """
    INSERT INTO balance_snapshots (subject, member_id, corp_num, balance, taken_at)
    SELECT subject, member_id, corp_num, balance, taken_at FROM (
        SELECT c, 0 AS o, 'member' AS subject, m.id AS member_id, m.corp_num,
               ((m.id * 7919 + c * 31) % 500000) / 10.0 AS balance, x.t AS taken_at
        FROM generate_series(CAST(:c0 AS integer), CAST(:c1 AS integer)) c
        CROSS JOIN LATERAL (SELECT (CAST(:day AS date) + time '00:00') AT TIME ZONE 'Asia/Seoul'
                                   + c * interval '30 minutes' + interval '20 seconds') AS x(t)
        CROSS JOIN members m
        UNION ALL
        SELECT c, 1, 'partner', NULL, '1000000001', 2500000 - c * 10, x.t
        FROM generate_series(CAST(:c0 AS integer), CAST(:c1 AS integer)) c
        CROSS JOIN LATERAL (SELECT (CAST(:day AS date) + time '00:00') AT TIME ZONE 'Asia/Seoul'
                                   + c * interval '30 minutes' + interval '25 seconds') AS x(t)
    ) r ORDER BY c, o, member_id
"""
# One "still firing" group per check, rule and channel, listing the alerts due for a repeat.
OUTBOX = """
    INSERT INTO notifications (rule, channel, kind, text, payload, status, attempts, next_attempt_at, created_at, sent_at)
    SELECT r, ch, 'repeat', g.text, g.payload || jsonb_build_object('text', g.text, 'kind', 'repeat'), 'sent', 1,
           x.t, x.t, x.t + interval '2 seconds'
    FROM generate_series(0, 47) c
    CROSS JOIN LATERAL (SELECT (CAST(:day AS date) + time '00:00') AT TIME ZONE 'Asia/Seoul'
                               + c * interval '30 minutes' + interval '40 seconds') AS x(t)
    CROSS JOIN unnest(ARRAY['low_balance', 'runway']) r
    CROSS JOIN LATERAL (
        SELECT '[REPEAT] ' || r || ': ' || count(*) || ' still firing' || E'\nstill firing:\n'
               || string_agg('  ' || a.subject || ': ' || a.summary, E'\n') FILTER (WHERE a.i <= 20)
               || CASE WHEN count(*) > 20 THEN E'\n  … and ' || (count(*) - 20) || ' more' ELSE '' END AS text,
               jsonb_build_object('rule', r, 'kind', 'repeat',
                   'counts', jsonb_build_object('firing', 0, 'repeat', count(*), 'unknown', 0, 'resolved', 0),
                   'alerts', jsonb_agg(jsonb_build_object('subject', a.subject, 'change', 'repeat', 'summary', a.summary,
                                                          'value', a.value, 'threshold', '10000'))) AS payload
        FROM (SELECT i, (1000000000 + (i * 7 + c * 131) % :n + 1)::text AS subject,
                     ((i * 37 + c) % 9999 + 0.5)::text AS value,
                     'balance ' || ((i * 37 + c) % 9999 + 0.5) || ' is below 10000' AS summary
              FROM generate_series(1, CAST(:listed AS integer)) i) a
    ) g
    CROSS JOIN unnest(ARRAY['log', 'webhook']) ch
    UNION ALL
    SELECT NULL, ch, 'discrepancy', '[DISCREPANCY] 1000000003: 1 new (all)',
           '{"period": "all", "members": {"1000000003": {"closing_balance": 1}}}', 'sent', 1, x.t, x.t, x.t
    FROM unnest(ARRAY['log', 'webhook']) ch
    CROSS JOIN LATERAL (SELECT (CAST(:day AS date) + time '03:45') AT TIME ZONE 'Asia/Seoul') AS x(t)
"""
CLAIMS = """
    INSERT INTO schedule_claims (job, slot, claimed_at)
    SELECT j.job, s, s FROM (VALUES ('watchdog', 60), ('catch_up', 300), ('pending', 600), ('balances', 1800)) AS j(job, every)
    CROSS JOIN LATERAL generate_series(CAST(:day AS date) AT TIME ZONE 'Asia/Seoul',
                                       (CAST(:day AS date) + 1) AT TIME ZONE 'Asia/Seoul' - interval '1 second',
                                       j.every * interval '1 second') AS s
    UNION ALL
    SELECT job, (CAST(:day AS date) + at) AT TIME ZONE 'Asia/Seoul', (CAST(:day AS date) + at) AT TIME ZONE 'Asia/Seoul'
    FROM (VALUES ('sync', time '02:00'), ('reconcile', time '03:30'), ('retention', time '05:00')) AS o(job, at)
"""


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a PostgreSQL backend on this machine (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def day(days_ago: int) -> dt.date:
    return today_kst() - dt.timedelta(days=days_ago)


def sizes(engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        return {t: (conn.execute(text(f"SELECT count(*) FROM {t}")).scalar(),
                    conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": t}).scalar())
                for t in TABLES}  # fmt: skip


def mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def print_sizes(title: str, columns: dict[str, dict[str, tuple[int, int]]]) -> None:
    print(f"\n{title}")
    heads = "".join(f"{name:>32}" for name in columns)
    print(f"  {'table':<18}{heads}")
    for t in TABLES:
        cells = "".join(f"{f'{v[t][0]:,} rows':>17}{mb(v[t][1]):>15}" for v in columns.values())
        print(f"  {t:<18}{cells}")


def listed(members: int) -> int:
    return max(1, round(members * FIRING * REPEAT_SHARE))


def seed_night(conn, members: int, *, runs_day, readings_day, outbox_day, claims_day, per_check: bool) -> None:
    if runs_day is not None:
        conn.execute(text(RUNS), {"day": runs_day})
    if readings_day is not None:
        ranges = [(c, c) for c in range(CHECKS_A_DAY)] if per_check else [(0, CHECKS_A_DAY - 1)]
        for c0, c1 in ranges:
            conn.execute(text(READINGS), {"day": readings_day, "c0": c0, "c1": c1})
    if outbox_day is not None:
        conn.execute(text(OUTBOX), {"day": outbox_day, "n": members, "listed": listed(members)})
    if claims_day is not None:
        conn.execute(text(CLAIMS), {"day": claims_day})


class Scratch:
    """A scratch database on the server, dropped on exit."""

    def __init__(self, server_url: str, label: str) -> None:
        server = make_url(server_url).set(drivername="postgresql+psycopg")
        self.name = f"ledger_bench_retention_{label}_{uuid.uuid4().hex[:8]}"
        self.admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        url = server.set(database=self.name).render_as_string(hide_password=False)
        # One connection: the prune's, whose backend's CPU is read from /proc.
        self.engine = make_engine(dataclasses.replace(Settings(), database_url=Secret(url)), pool_size=1)
        migrate.upgrade(self.engine)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()

    def vacuum(self, analyze_only: bool = False, full: bool = False) -> float:
        command = "ANALYZE" if analyze_only else "VACUUM (FULL, ANALYZE)" if full else "VACUUM (ANALYZE)"
        started = time.perf_counter()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for t in TABLES:
                conn.execute(text(f"{command} {t}"))
        return time.perf_counter() - started


@dataclasses.dataclass
class Timed:
    report: service.Report
    wall: float
    cpu: float
    pg_cpu: float


def timed_prune(engine, policy: Policy, now: dt.datetime | None = None) -> Timed:
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()  # the pool hands this one to the prune
    w0, c0, p0 = time.perf_counter(), time.process_time(), backend_cpu(pid)
    report = service.prune(engine, policy, now=now)
    return Timed(report, time.perf_counter() - w0, time.process_time() - c0, backend_cpu(pid) - p0)


def print_prune(title: str, run: Timed) -> None:
    print(f"\n{title}: wall {run.wall:.1f} s, CPU {run.cpu + run.pg_cpu:.1f} s "
          f"(this process {run.cpu:.1f} + PostgreSQL backend {run.pg_cpu:.1f})")  # fmt: skip
    print(f"  {'rule':<28}{'rows':>12}{'batches':>9}{'largest':>9}{'wall':>9}")
    for o in run.report.outcomes:
        note = f"  STOPPED: {o.stopped}" if o.stopped else ""
        print(f"  {o.rule:<28}{o.rows:>12,}{o.batches:>9,}{o.largest_batch:>9,}{o.seconds:>8.1f}s{note}")


def print_plans(engine, policy: Policy) -> None:
    print("\nplans of one batch of each rule (EXPLAIN, first chunk of members):")
    cutoffs = policy.cutoffs(dt.datetime.now(dt.UTC))
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                text("SELECT id FROM members ORDER BY id LIMIT :n"), {"n": service.MEMBERS_PER_CHUNK}
            ).scalars()
        )
        for rule in RULES:
            if getattr(cutoffs, rule.cutoff) is None:
                continue
            chunk = ["1000000001"] if rule.walk == "partners" else ids
            params = {**service.params_for(rule, service.bounds_for(rule, cutoffs), chunk), "limit": policy.batch_rows}
            plan = conn.execute(text("EXPLAIN (COSTS OFF) " + rule.delete), params).scalars().all()
            scans = [line.strip().lstrip("-> ").split("  ")[0] for line in plan if "Scan" in line]
            print(f"  {rule.name:<28}{'; '.join(scans)}")
            # The tables walked member by member grow with the members: none may be read whole.
            # (The outbox, heartbeats and claims hold a few thousand rows: a scan is the plan.)
            if rule.walk and any(s.startswith("Seq Scan") for s in scans):
                print(f"    !! {rule.name} reads a table sequentially")
        conn.rollback()


def part_night(server_url: str, members: int) -> None:
    print(f"== one night at {members:,} members ==")
    with Scratch(server_url, "night") as db:
        started = time.perf_counter()
        with db.engine.begin() as conn:
            conn.execute(text(MEMBERS), {"n": members})
            conn.execute(text(HEARTBEATS))
        db.vacuum()
        empty = sizes(db.engine)
        with db.engine.begin() as conn:  # dated to cross every cutoff of the default policy tonight
            seed_night(conn, members, runs_day=day(91), readings_day=day(31), outbox_day=day(31), claims_day=day(15),
                       per_check=True)  # fmt: skip
        db.vacuum()
        night = sizes(db.engine)
        growth = {t: (night[t][0] - empty[t][0], night[t][1] - empty[t][1]) for t in TABLES}
        print(f"seeded in {time.perf_counter() - started:.0f} s; {listed(members):,} alerts per repeat notification")
        print_sizes("one night adds:", {"per night": growth})
        # The rest of the steady state the prune must step over: last night's runs and reading
        # (each member's last success and latest reading), and a one-a-day reading 401 days old.
        with db.engine.begin() as conn:
            conn.execute(text(RUNS), {"day": day(1)})
            conn.execute(text(READINGS), {"day": day(1), "c0": 47, "c1": 47})
            conn.execute(text(READINGS), {"day": day(401), "c0": 47, "c1": 47})
        db.vacuum()
        before = sizes(db.engine)
        policy = Policy()
        print_plans(db.engine, policy)
        run = timed_prune(db.engine, policy)
        after = sizes(db.engine)
        vacuum = db.vacuum()
        vacuumed = sizes(db.engine)
        print_prune(f"nightly prune at {members:,} members (steady state, default policy)", run)
        print(f"  then VACUUM (ANALYZE) of the five tables, as autovacuum would: {vacuum:.1f} s")
        print_sizes("tables:", {"before the prune": before, "after": after, "after VACUUM": vacuumed})


def part_year(server_url: str, members: int, days: int) -> None:
    print(f"\n== a simulated year: {days} nights at {members:,} members ==")
    with Scratch(server_url, "year") as db:
        started = time.perf_counter()
        with db.engine.begin() as conn:
            conn.execute(text(MEMBERS), {"n": members})
            conn.execute(text(HEARTBEATS))
        for ago in range(days, 0, -1):
            with db.engine.begin() as conn:
                seed_night(conn, members, runs_day=day(ago), readings_day=day(ago), outbox_day=day(ago),
                           claims_day=day(ago), per_check=False)  # fmt: skip
        db.vacuum()
        print(f"seeded in {time.perf_counter() - started:.0f} s")
        year = sizes(db.engine)
        policy = Policy()
        first = timed_prune(db.engine, policy)
        pruned = sizes(db.engine)
        vacuum = db.vacuum()
        vacuumed = sizes(db.engine)
        print_prune("first prune of the year", first)
        print(f"  then VACUUM (ANALYZE): {vacuum:.1f} s")
        # The nights after: each night's rows, then its prune a day later, stepping over what
        # the year left. Alternately as it runs (thinning from where the last run stopped, its
        # mark) and with the marks deleted (reading a year of one-a-day readings again), A/B.
        scale = 100_000 / members
        runs: dict[bool, list[Timed]] = {True: [], False: []}
        for night, marked in enumerate((True, False, True, False)):
            with db.engine.begin() as conn:
                seed_night(conn, members, runs_day=day(-night), readings_day=day(-night), outbox_day=day(-night),
                           claims_day=day(-night), per_check=False)  # fmt: skip
                if not marked:
                    conn.execute(text("DELETE FROM retention_marks"))
            db.vacuum(analyze_only=True)
            run = timed_prune(db.engine, policy, now=dt.datetime.now(KST) + dt.timedelta(days=night + 1))
            runs[marked].append(run)
            print_prune(f"night {night + 1}'s prune ({'with marks' if marked else 'marks deleted: thinning reads it all'})",
                        run)  # fmt: skip
        cpu = {marked: sum(r.cpu + r.pg_cpu for r in done) / len(done) for marked, done in runs.items()}
        wall = {marked: sum(r.wall for r in done) / len(done) for marked, done in runs.items()}
        print(
            f"\nnightly prune, mean of 2 each: with marks {wall[True]:.1f} s wall, {cpu[True]:.2f} s CPU; "
            f"without {wall[False]:.1f} s wall, {cpu[False]:.2f} s CPU; CPU ratio {cpu[False] / cpu[True]:.1f}x"
        )
        print(
            f"  per member {1000 * cpu[True] / members:.2f} ms CPU with marks: at 100,000 members "
            f"~{cpu[True] * scale:.0f} s CPU (linear in members; without marks ~{cpu[False] * scale:.0f} s)"
        )
        print_sizes("tables:", {"a year, unpruned": year, "pruned": pruned, "after VACUUM": vacuumed})
        # Compacted, the tables hold only what a pruned year keeps: that, per member, is the
        # steady state (a live table also has about a night's free space the next night reuses).
        db.vacuum(full=True)
        steady = sizes(db.engine)
        with db.engine.connect() as conn:
            partner = conn.execute(text("SELECT count(*) FROM balance_snapshots WHERE member_id IS NULL")).scalar()
        print(f"\nafter a year and four nights, pruned and compacted (VACUUM FULL), and per member x{scale:,.0f}:")
        print(f"  {'table':<18}{'here':>34}{'at 100,000 members':>34}")
        for t in TABLES:
            rows, size = steady[t]
            if t in ("sync_runs", "balance_snapshots"):
                fixed = partner if t == "balance_snapshots" else 0  # the partner's readings do not grow with members
                projected = f"{f'{round((rows - fixed) * scale + fixed):,} rows':>19}{mb(round(size * scale)):>15}"
            else:
                projected = f"{'(not per member)':>34}"
            print(f"  {t:<18}{f'{rows:,} rows':>19}{mb(size):>15}{projected}")
        print("  notifications: their number does not grow with members; their size does (each lists the alerts")
        print("  of its group): one night's at 100,000 members is part 1's figure, times LEDGER_RETENTION_OUTBOX_DAYS.")


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so the scratch databases are dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--year-members", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="a server to create scratch databases on (random names, dropped after)")  # fmt: skip
    parser.add_argument("--skip-night", action="store_true")
    parser.add_argument("--skip-year", action="store_true")
    args = parser.parse_args()
    if not args.skip_night:
        part_night(args.database_url, args.members)
    if not args.skip_year:
        part_year(args.database_url, args.year_members, args.days)


if __name__ == "__main__":
    main()
