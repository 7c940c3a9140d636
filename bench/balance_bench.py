"""The balance check with many members and a slow Popbill: one member at a time (the check as it
was) against members at once through the client's gate (POPBILL_MAX_CONCURRENCY).

    python bench/balance_bench.py [--members 300] [--latency-ms 60] [--concurrency 1 16] [--rounds 2]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledger_bench_balances]

A database of the bench's own is made (and dropped after), with `--members` members; the simulator
waits `--latency-ms` before every answer. Each round runs the check once per concurrency, in
turn (A/B alternated), each with a fresh client (so every member's token is asked for too, as
in a first check of the day), and prints wall time, this process's CPU time, the calls made and
the most calls in flight the simulator saw.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from ledger.alerts.service import check_balances  # noqa: E402
from ledger.db import migrate  # noqa: E402
from ledger.db.engine import make_engine  # noqa: E402
from ledger.members.models import Member  # noqa: E402
from ledger.popbill import PopbillClient  # noqa: E402
from ledger.secret import Secret  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.simulator import SimConfig, Simulator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/ledger_bench_balances")
    args = parser.parse_args()

    url = make_url(args.database_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    members = [f"{3_000_000_000 + n:010d}" for n in range(args.members)]
    try:
        with Simulator(SimConfig(seed=3, history_days=1, usage_per_day=0)) as sim:
            base = dataclasses.replace(Settings().with_hosts(sim.url), database_url=Secret(args.database_url))
            engine = make_engine(base)
            migrate.upgrade(engine)
            with engine.begin() as conn:
                conn.execute(insert(Member), [{"corp_num": corp} for corp in members])
            sim.world.prepare(members)
            sim.inject("latency", rate=1.0, seconds=args.latency_ms / 1000)
            print(f"{args.members} members, {args.latency_ms:g} ms a call (the token's included)")
            print(f"{'round':>5} {'concurrency':>11} {'wall s':>8} {'cpu s':>7} {'calls':>6} {'in flight':>9} {'members/s':>9}")
            walls: dict[int, list[float]] = {c: [] for c in args.concurrency}
            for round_no in range(1, args.rounds + 1):
                for concurrency in args.concurrency:
                    settings = dataclasses.replace(base, max_concurrency=concurrency)
                    sim.max_in_flight, calls_before = 0, sum(sim.counts.values())
                    wall, cpu = time.perf_counter(), time.process_time()
                    with PopbillClient(settings) as client:
                        readings = check_balances(engine, client, settings)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    assert not [r for r in readings if r.error], "a reading failed"
                    walls[concurrency].append(wall)
                    calls = sum(sim.counts.values()) - calls_before
                    print(f"{round_no:>5} {concurrency:>11} {wall:>8.2f} {cpu:>7.2f} {calls:>6} {sim.max_in_flight:>9}"
                          f" {args.members / wall:>9.1f}")
            first = args.concurrency[0]
            for concurrency in args.concurrency[1:]:
                ratios = [a / b for a, b in zip(walls[first], walls[concurrency], strict=True)]
                print(f"wall time, concurrency {first} / {concurrency}: " + ", ".join(f"{r:.1f}x" for r in ratios))
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
