"""How long `ledger sync` takes to stop after SIGINT/SIGTERM, with pages flowing and with a
request hanging on a stalled server, for several --jobs.

    python bench/interrupt_latency.py --database-url postgresql+psycopg://postgres@127.0.0.1/ledger_bench_x

The database is created (it must not exist) and dropped at the end. Prints, for each case,
the wall time from the signal to the process's exit, its exit code and the run statuses left.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.db import migrate  # noqa: E402
from ledger.members.service import MemberInput, add_member  # noqa: E402
from ledger.simulator import SimConfig, Simulator  # noqa: E402

MEMBERS = ["1234567890", "2208112345", "1018212345", "3148154321"]


def run_case(url: str, sim: Simulator, jobs: int, sig: int, stalled: bool) -> tuple[float, int, dict]:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE usages, payments, refunds, sync_runs, sync_states CASCADE"))
    sim.clear_faults()
    before = len(sim.requests("/UseHistory"))
    if stalled:
        sim.inject("stall", path="/UseHistory", skip=3, count=100, seconds=120)
    else:
        sim.inject("latency", path="/UseHistory", rate=1.0, seconds=0.05)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    env.update(LEDGER_DATABASE_URL=url, POPBILL_API_URL=sim.url, LINKHUB_AUTH_URL=sim.url, LEDGER_SYNC_PER_PAGE="100")
    proc = subprocess.Popen([sys.executable, "-m", "ledger", "sync", "--jobs", str(jobs)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    while len(sim.requests("/UseHistory")) < before + 4:
        time.sleep(0.02)
    time.sleep(0.3)
    sent = time.perf_counter()
    proc.send_signal(sig)
    proc.wait(timeout=120)
    elapsed = time.perf_counter() - sent
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM sync_runs GROUP BY status")).all())
    engine.dispose()
    return elapsed, proc.returncode, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    url = make_url(args.database_url).set(drivername="postgresql+psycopg")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    rendered = url.render_as_string(hide_password=False)
    try:
        engine = create_engine(rendered)
        migrate.upgrade(engine)
        with Session(engine) as session:
            for corp in MEMBERS:
                add_member(session, MemberInput(corp))
            session.commit()
        engine.dispose()
        with Simulator(SimConfig(seed=3, history_days=120, usage_per_day=40)) as sim:
            print(f"{'case':<34} {'signal->exit':>12} {'exit':>5}  runs left")
            for stalled in (False, True):
                for jobs in (1, 4):
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        took, code, statuses = run_case(rendered, sim, jobs, sig, stalled)
                        case = f"{'request hanging' if stalled else 'pages flowing'}, --jobs {jobs}, {sig.name}"
                        print(f"{case:<34} {took:>10.2f} s {code:>5}  {statuses}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
