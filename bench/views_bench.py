"""Accountants' views and reconciliation at scale: 10,000 members, 5,000,000 usage rows.

    python bench/views_bench.py [--members 10000] [--rows 5000000] [--month 2025-06]
                                [--database-url URL] [--keep | --existing NAME] [--skip-reconcile]
                                [--base /path/to/other/tree] [--rounds N]

Creates a private database (ledger_bench_views_<random>, dropped at the end unless --keep; or
reuses one kept before with --existing, which saves the ~6 minutes of generating 5M rows),
builds the schema with Alembic (head), generates the ledger inside PostgreSQL
(tests/synthetic.py: generate_series, a balance chain that adds up; then make_reconcilable: a
settled deposit per charge, syncs and balance readings, and a few members with each kind of
trouble), then for each view asks for one member-month and for all members' month, side by side
on the same data: 0004's definitions (recreated as temporary views that shadow the real ones on
the same connection) and the current ones. Prints for each: wall time of fetching every row, the
client's CPU time, the server's execution time from EXPLAIN (ANALYZE), whether the plan reads
usages with a sequential scan, and the ratio.

Then times `ledger reconcile --month` and the full `ledger reconcile` (wall, and the CLI
process's CPU: PostgreSQL's is not in it), each from no discrepancies (all findings new), of
this tree and, with --base, of another tree (e.g. a worktree of main) on the same database,
alternating A and B --rounds times, and checks both found the same discrepancies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger.db import migrate  # noqa: E402
from ledger.db.engine import make_engine  # noqa: E402
from ledger.secret import Secret  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from tests.synthetic import (  # noqa: E402
    FIRST_CORP_NUM,
    fill,
    make_reconcilable,
    refresh_syncs,
    shadow_with_0004_views,
)

# (view, filter for one member-month, filter for every member's month)
QUERIES = [
    ("v_monthly_statements", "corp_num = :c AND month = :m", "month = :m"),
    ("v_monthly_usage_by_service", "corp_num = :c AND month = :m", "month = :m"),
    ("v_usage_daily", "corp_num = :c AND day >= :m AND day < :next", "day >= :m AND day < :next"),
    ("v_usage_signed", "member_id = :id AND tx_dt >= :start AND tx_dt < :end", "tx_dt >= :start AND tx_dt < :end"),
    ("v_deposits", "corp_num = :c AND month = :m", "month = :m"),
    ("v_pending_items", "corp_num = :c", "true"),
    ("v_open_discrepancies", "corp_num = :c", "true"),
]
CHANGED = {"v_monthly_statements", "v_monthly_usage_by_service", "v_usage_daily", "v_usage_signed"}


def _seq_scans_usages(plan: dict) -> bool:
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") == "usages":
        return True
    return any(_seq_scans_usages(child) for child in plan.get("Plans", []))


def _usage_rows_read(plan: dict) -> int:
    """Rows the plan's scans of usages returned or filtered out, over all their loops."""
    read = 0
    if plan.get("Relation Name") == "usages":
        read = (plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)) * plan["Actual Loops"]
    return read + sum(_usage_rows_read(child) for child in plan.get("Plans", []))


def measure(conn, query: str, params: dict) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    rows = len(conn.execute(text(query), params).all())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    (document,) = conn.execute(text(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {query}"), params).scalar_one()
    return {"rows": rows, "wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "server_ms": document["Execution Time"],
            "seq_scan": _seq_scans_usages(document["Plan"]), "usages_read": _usage_rows_read(document["Plan"])}  # fmt: skip


def run_views(engine, params: dict, definitions: tuple[str, ...]) -> list[dict]:
    results = []
    with engine.connect() as conn:
        for definition in definitions:
            if definition == "0004":
                shadow_with_0004_views(conn)
            schema = "pg_temp" if definition == "0004" else "public"
            for view, one, every in QUERIES:
                if definition == "0004" and view not in CHANGED:
                    continue
                for scope, where in (("one member-month", one), ("all members, month", every)):
                    query = f"SELECT * FROM {schema}.{view} WHERE {where}"
                    results.append({"view": view, "scope": scope, "definition": definition,
                                    **measure(conn, query, params)})  # fmt: skip
                    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        conn.rollback()
    return results


FINDINGS = text(
    "SELECT md5(string_agg(concat_ws('|', member_id, check_name, period, fingerprint, status, expected, actual, "
    "difference, description, evidence::text), E'\\n' ORDER BY member_id, check_name, period, fingerprint)), count(*) "
    "FROM discrepancies"
)


def run_reconcile(engine, url: str, tree: Path, month: str | None) -> dict:
    """One `ledger reconcile` of `tree`'s code, from no discrepancies (every finding is new)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM discrepancies"))
        conn.execute(text("DELETE FROM notifications"))
        refresh_syncs(conn)
    env = {**os.environ, "LEDGER_DATABASE_URL": url}
    command = [sys.executable, "-m", "ledger", "reconcile", *(["--month", month] if month else []), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)  # cwd: `-m ledger` is tree's
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with engine.connect() as conn:
        digest, count = conn.execute(FINDINGS).one()
    reports = json.loads(done.stdout) if done.stdout.startswith("[") else None
    return {"exit": done.returncode, "wall_s": wall, "cpu_s": cpu, "findings": count, "digest": digest,
            "reports": reports, "error": None if reports is not None else done.stderr.strip().splitlines()[-3:]}  # fmt: skip


def compare_reconcile(engine, url: str, trees: dict[str, Path], month: str, rounds: int) -> None:
    results: dict = {}
    for round_ in range(rounds):
        for scope in (month, None):
            order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
            for name, tree in order:
                figures = run_reconcile(engine, url, tree, scope)
                results.setdefault((scope, name), []).append(figures)
                print(json.dumps({"scope": scope or "all", "code": name, **{k: v for k, v in figures.items()
                                  if k != "reports"}}), file=sys.stderr, flush=True)  # fmt: skip
    print(f"\nledger reconcile at this size, from no discrepancies; median of {rounds} (each run's figures in "
          "brackets); CPU = the CLI process (user+sys), PostgreSQL's time is not in it")  # fmt: skip
    print(f"{'command':<34} {'code':<10} {'exit':>4} {'wall s':>8} {'CPU s':>8} {'findings':>9}  runs (wall/CPU)")
    for (scope, name), runs in results.items():
        command = f"ledger reconcile{f' --month {scope}' if scope else ''}"
        walls, cpus = sorted(r["wall_s"] for r in runs), sorted(r["cpu_s"] for r in runs)
        each = ", ".join(f"{r['wall_s']:.1f}/{r['cpu_s']:.1f}" for r in runs)
        print(f"{command:<34} {name:<10} {runs[0]['exit']:>4} {walls[len(walls) // 2]:>8.1f} {cpus[len(cpus) // 2]:>8.1f} "
              f"{runs[0]['findings']:>9,}  {each}")  # fmt: skip
    for scope in (month, None):
        outcomes = {(r["exit"], r["digest"], json.dumps(r["reports"], sort_keys=True))
                    for name in trees for r in results[(scope, name)]}  # fmt: skip
        label = f"--month {scope}" if scope else "(all)"
        print(f"same findings, reports and exit code for every run of {label}: {'yes' if len(outcomes) == 1 else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=5_000_000, help="usage rows in all")
    parser.add_argument("--month", default="2025-06", help="the Korean month asked for (data covers 2025)")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--existing", metavar="NAME", help="use this database, built before with --keep (kept)")
    parser.add_argument("--skip-reconcile", action="store_true")
    parser.add_argument("--base", type=Path, help="another tree (e.g. a worktree of main) whose reconcile runs too")
    parser.add_argument("--rounds", type=int, default=1, help="reconcile runs of each tree and scope")
    parser.add_argument("--skip-0004", action="store_true", help="time only the current views, not 0004's too")
    args = parser.parse_args()

    base = make_url(args.database_url).set(drivername="postgresql+psycopg")
    target = base.set(database=args.existing or f"ledger_bench_views_{secrets.token_hex(4)}")
    url = target.render_as_string(hide_password=False)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    if not args.existing:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    engine = make_engine(Settings(database_url=Secret(url)))
    try:
        migrate.upgrade(engine)
        started = time.perf_counter()
        if not args.existing:
            with engine.begin() as conn:
                fill(conn, members=args.members, rows_per_member=args.rows // args.members)
            with engine.begin() as conn:
                make_reconcilable(conn)
        with engine.connect() as conn:
            usages = conn.execute(text("SELECT count(*) FROM usages")).scalar()
            args.members = conn.execute(text("SELECT count(*) FROM members")).scalar()
        print(f"{target.database}: {args.members:,} members, {usages:,} usage rows"
              + ("" if args.existing else f", generated in {time.perf_counter() - started:.1f} s"))  # fmt: skip

        month = dt.date.fromisoformat(f"{args.month}-01")
        following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        corp_num = str(FIRST_CORP_NUM + args.members // 2)
        with engine.connect() as conn:
            member_id = conn.execute(text("SELECT id FROM members WHERE corp_num = :c"), {"c": corp_num}).scalar()
        kst = dt.timezone(dt.timedelta(hours=9))
        params = {"c": corp_num, "id": member_id, "m": month, "next": following,
                  "start": dt.datetime.combine(month, dt.time(), kst), "end": dt.datetime.combine(following, dt.time(), kst)}  # fmt: skip
        results = run_views(engine, params, ("0011",) if args.skip_0004 else ("0011", "0004"))

        print(
            f"\nmember {corp_num}, month {args.month}; times in ms; seq = the plan reads usages sequentially; "
            "read = usage rows its scans read"
        )
        print(f"{'view':<27} {'scope':<19} {'def':<4} {'rows':>7} {'wall':>9} {'cpu':>8} {'server':>9} {'seq':>4} {'read':>10}"
              f" {'0004/0011 wall':>15}")  # fmt: skip
        by_key = {(r["view"], r["scope"], r["definition"]): r for r in results}
        for r in sorted(results, key=lambda r: ([q[0] for q in QUERIES].index(r["view"]), r["scope"], r["definition"])):
            ratio = ""
            if r["definition"] == "0011" and (r["view"], r["scope"], "0004") in by_key:
                ratio = f"{by_key[(r['view'], r['scope'], '0004')]['wall_ms'] / r['wall_ms']:.1f}x"
            print(f"{r['view']:<27} {r['scope']:<19} {r['definition']:<4} {r['rows']:>7,} {r['wall_ms']:>9.1f} "
                  f"{r['cpu_ms']:>8.1f} {r['server_ms']:>9.1f} {'yes' if r['seq_scan'] else 'no':>4} {r['usages_read']:>10,} {ratio:>15}")  # fmt: skip
        if not args.skip_reconcile:
            trees = {"this": ROOT} if args.base is None else {"base": args.base.resolve(), "this": ROOT}
            compare_reconcile(engine, url, trees, args.month, args.rounds)
    finally:
        engine.dispose()
        if args.keep or args.existing:
            print(f"kept {target.database}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
