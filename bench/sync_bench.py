"""Sync benchmark: initial sync, re-sync with no new data, re-sync with 1% new rows.

    python bench/sync_bench.py [--members 20] [--rows 1000000] [--database-url URL]

The simulator runs in its own process and generates every history before the clock starts,
so the figures measure our client, sync and database writes. Prints rows/s, API calls
against the minimum possible, peak RSS of this process (client + sync), and the time split
between HTTP, parsing and the database.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.db import migrate  # noqa: E402
from ledger.db.engine import make_engine  # noqa: E402
from ledger.members.service import MemberInput, add_member  # noqa: E402
from ledger.popbill import PopbillClient  # noqa: E402
from ledger.secret import Secret  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.sync.service import sync_all  # noqa: E402
from ledger.sync.windows import SyncOptions, first_day, windows  # noqa: E402

HISTORY_DAYS = 365


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulated_today(url: str) -> dt.date:
    return dt.date.fromisoformat(requests.get(f"{url}/_sim/clock", timeout=10).json()["now"][:10])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_database(url: str) -> None:
    target = make_url(url).set(drivername="postgresql+psycopg")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def minimum_calls(sim_url: str, corp_nums: list[str], today, options: SyncOptions) -> int:
    """ceil(rows/1000) per member and window (at least one call per window), from the truth."""
    total = 0
    for corp in corp_nums:
        truth = requests.get(f"{sim_url}/_sim/usage-days/{corp}", timeout=60).json()
        for start, end in windows(first_day(None, today, options), today, options.window_days):
            rows = sum(n for day, n in truth.items() if f"{start:%Y%m%d}" <= day <= f"{end:%Y%m%d}")
            total += max(1, math.ceil(rows / options.per_page))
    return total


def run_phase(name: str, engine, client: PopbillClient, today, options: SyncOptions, kinds=("usage",), jobs=2):
    before = dataclasses.replace(client.stats)
    started = time.perf_counter()
    results = sync_all(engine, client, today=today, options=options, kinds=kinds, jobs=jobs)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if r.status != "succeeded"]
    if failed:
        raise SystemExit(f"{name}: {len(failed)} syncs failed: {failed[0].error}")
    rows = sum(r.rows for r in results)
    http = client.stats.http_seconds - before.http_seconds
    parse = client.stats.parse_seconds - before.parse_seconds
    db = sum(r.db_seconds for r in results)
    calls = sum(r.api_calls for r in results)
    print(f"\n== {name}")
    print(
        f"rows seen {rows:,}  inserted {sum(r.inserted for r in results):,}  in {elapsed:.2f} s  ->  {rows / elapsed:,.0f} rows/s"
    )
    print(
        f"API calls {calls:,} ({client.stats.http_requests - before.http_requests:,} HTTP requests incl. tokens and retries)"
    )
    print(f"time split (summed over {jobs} parallel syncs, so it can exceed the wall time): HTTP {http:.2f} s, "
          f"parsing {parse:.2f} s, database {db:.2f} s; wall {elapsed:.2f} s")  # fmt: skip
    print(f"peak RSS so far {peak_rss_mb():.0f} MB")
    return results, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage rows in all")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/ledger_bench")
    parser.add_argument("--jobs", type=int, default=2, help="members synced at once")
    args = parser.parse_args()

    per_day = args.rows / args.members / HISTORY_DAYS
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "ledger", "simulator", "--port", str(port), "--seed", "1",
         "--history-days", str(HISTORY_DAYS), "--usage-per-day", f"{per_day:.4f}"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        sim.stderr.readline()
        url = f"http://127.0.0.1:{port}"
        corp_nums = [f"{1000000000 + 7919 * n:010d}" for n in range(args.members)]
        started = time.perf_counter()
        usage_rows = requests.post(f"{url}/_sim/prepare", json={"corp_nums": corp_nums}, timeout=600).json()[
            "usage_rows"
        ]
        print(
            f"simulator: {args.members} members, {usage_rows:,} usage rows generated in {time.perf_counter() - started:.1f} s (not timed below)"
        )

        fresh_database(args.database_url)
        settings = dataclasses.replace(Settings().with_hosts(url), database_url=Secret(args.database_url))
        engine = make_engine(settings)
        migrate.upgrade(engine)
        with Session(engine) as session:
            for corp in corp_nums:
                add_member(session, MemberInput(corp))
            session.commit()
        today = simulated_today(url)
        options = SyncOptions()
        minimum = minimum_calls(url, corp_nums, today, options)
        with PopbillClient(settings) as client:
            started = time.perf_counter()
            for corp in corp_nums:  # fills the simulator's page cache, so it serves at full speed
                for start, end in windows(first_day(None, today, options), today, options.window_days):
                    for _ in client.iter_use_history(corp, start, end, per_page=options.per_page):
                        pass
            print(f"warm-up pass over every page, not timed: {time.perf_counter() - started:.1f} s")
            client.requestor.stats = type(client.stats)()
            _, calls = run_phase("initial sync (usage)", engine, client, today, options, jobs=args.jobs)
            print(f"API calls against the minimum possible: {calls:,} / {minimum:,}")
            rss_initial = peak_rss_mb()
            _, calls = run_phase("re-sync, no new data (usage)", engine, client, today, options, jobs=args.jobs)
            print(f"calls per member and window: {calls / args.members:.2f} (target: at most 1)")
            days = max(1, round(HISTORY_DAYS * 0.01))
            requests.post(f"{url}/_sim/clock", json={"advance_days": days}, timeout=600)
            today = simulated_today(url)
            run_phase(
                f"re-sync with ~1% new rows ({days} more days) (usage)", engine, client, today, options, jobs=args.jobs
            )
            run_phase(
                "payments and refunds, first sync", engine, client, today, options, ("payments", "refunds"), args.jobs
            )
        print(f"\npeak RSS: {rss_initial:.0f} MB after the initial sync, {peak_rss_mb():.0f} MB at the end")
    finally:
        sim.terminate()
        sim.wait(timeout=30)


if __name__ == "__main__":
    main()
