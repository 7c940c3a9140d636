"""Month end at scale: the month workbook, the PDF month pack and the close, at 1,000 and 10,000
members, side by side, to show that memory stays flat as members grow.

    nice python bench/month_end_bench.py [--sizes 1000,10000] [--database-url URL] [--keep]

For each size, fills a scratch database (ledger_bench_month_<pid>_<size>, dropped at the end
unless --keep) inside PostgreSQL: members with 45 days of light history (two uses a day, a
charge now and then, a settled deposit a month) over the last two Korean months, synced
through today, and open discrepancies for one member in two hundred (they are flagged, and
make the close refuse them, so the close runs with --force). Each step runs in a fresh child
process, as the CLI runs it, so each peak RSS is its own: wall time, CPU time of the child
(user + system; PostgreSQL's own time is not in it), peak RSS and the file's size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_bench import fresh_database  # noqa: E402

STEPS = ("idle", "workbook", "pack", "close")


def months() -> tuple[dt.date, dt.date]:
    """(first month of the history, the month reported and closed: the last whole one)."""
    from ledger.kst import today_kst
    from ledger.reports.statement import previous_month

    reported = previous_month(today_kst().replace(day=1))
    return previous_month(reported), reported


def child(step: str, url: str, out: Path) -> None:
    """Runs in its own process: one step, then its figures as one JSON line."""
    from ledger.closing.service import close_month
    from ledger.db.engine import make_engine
    from ledger.reports.workbook import month_pack, month_workbook
    from ledger.secret import Secret
    from ledger.settings import Settings

    engine = make_engine(Settings(database_url=Secret(url)))
    _, month = months()
    wall, cpu = time.perf_counter(), time.process_time()
    detail = ""
    if step == "workbook":
        report = month_workbook(engine, month, out, "ko")
        detail = f"{report.members:,} members, {report.sheets} sheets, {len(report.flagged)} flagged"
    elif step == "pack":
        report = month_pack(engine, month, out, "ko")
        detail = f"{report.statements:,} PDF statements + summary.xlsx"
    elif step == "close":
        result = close_month(engine, month, "bench", force_reason="bench: discrepancies left open on purpose")
        detail = f"{len(result.closed):,} closed, {len(result.forced)} forced"
    figures = {
        "step": step, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "bytes": out.stat().st_size if out.exists() else 0, "detail": detail,
    }  # fmt: skip
    print(json.dumps(figures))


def fill(url: str, members: int) -> None:
    from ledger.db import migrate
    from ledger.db.engine import make_engine
    from ledger.secret import Secret
    from ledger.settings import Settings
    from tests.synthetic import FIRST_CORP_NUM
    from tests.synthetic import fill as fill_ledger

    first, _ = months()
    fresh_database(url)
    engine = make_engine(Settings(database_url=Secret(url)))
    migrate.upgrade(engine)
    with engine.begin() as conn:
        # 90 rows over 60 days from the first month on: about 45 days of two uses a day.
        fill_ledger(conn, members=members, rows_per_member=90, months=2, start=f"{first:%Y-%m-%d}")
        conn.execute(text("UPDATE members SET name = '회원 ' || substr(corp_num, 7) || ' 상사'"))
        conn.execute(
            text("INSERT INTO sync_states (member_id, kind, high_water, last_success_at, last_full_pass_at) "
                 "SELECT m.id, k.kind, current_date, now(), now() FROM members m "
                 "CROSS JOIN (VALUES ('payments'), ('usage'), ('refunds')) k(kind)")
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO discrepancies (member_id, check_name, period, fingerprint, description, evidence) "
                 "SELECT id, 'balance_chain', 'all', 'bench:' || id, 'planted by the bench', "
                 "jsonb_build_object('row', jsonb_build_object('tx_dt', CAST(:day AS text))) FROM members WHERE id % 200 = 7"),
            {"day": f"{months()[1]:%Y-%m}-15 10:00:00"},
        )  # fmt: skip
        assert conn.execute(text("SELECT min(corp_num)::bigint FROM members")).scalar() > FIRST_CORP_NUM
    engine.dispose()


def run_size(size: int, url: str, steps: list[str]) -> list[dict]:
    started = time.perf_counter()
    fill(url, size)
    print(f"\n{size:,} members: filled in {time.perf_counter() - started:.1f} s", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="ledger-month-bench-") as folder:
        for step in steps:
            out = Path(folder) / {"workbook": "month.xlsx", "pack": "pack.zip"}.get(step, "none")
            done = subprocess.run(
                [sys.executable, __file__, "--child", step, "--database-url", url, "--out", str(out)],
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(f"{step} failed:\n{done.stderr}")
            r = {**json.loads(done.stdout.strip().splitlines()[-1]), "members": size}
            results.append(r)
            print(f"{size:>7,} {r['step']:<9} wall {r['wall']:7.1f} s  cpu {r['cpu']:7.1f} s  peak RSS "
                  f"{r['peak_rss_mb']:7.1f} MB  file {r['bytes'] / 2**20:7.2f} MB  {r['detail']}", flush=True)  # fmt: skip
    return results


def drop(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--database-url",
                        default=f"postgresql+psycopg://postgres@127.0.0.1:5432/ledger_bench_month_{os.getpid()}")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="Keep the scratch databases.")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.database_url, args.out)
        return
    by_size = {}
    for size in (int(s) for s in args.sizes.split(",")):
        url = f"{args.database_url}_{size}"
        try:
            by_size[size] = {r["step"]: r for r in run_size(size, url, args.steps.split(","))}
        finally:
            if not args.keep:
                drop(url)
    if len(by_size) >= 2:
        small, large = sorted(by_size)[0], sorted(by_size)[-1]
        print(f"\n{large:,} against {small:,} members (x{large / small:.0f}):")
        for step in args.steps.split(","):
            a, b = by_size[small][step], by_size[large][step]
            print(f"  {step:<9} wall x{b['wall'] / max(a['wall'], 1e-9):5.1f}  cpu x{b['cpu'] / max(a['cpu'], 1e-9):5.1f}  "
                  f"peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:4.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
