"""Export benchmark: 1,000,000 usage rows to CSV and to XLSX, streaming, in constant memory.

    python bench/export_bench.py [--rows 1000000] [--database-url URL] [--keep]

Fills a scratch database (default ledger_bench_export_<pid>, dropped at the end unless --keep)
with usage rows generated inside PostgreSQL, then runs each export in a fresh child process so
each peak RSS is its own. Side by side in one run: the streaming CSV and XLSX exports, the old
way (every row fetched into Python first, then written) for comparison, and an idle child
(interpreter and imports only). Prints wall time, CPU time of the child (user + system; the
PostgreSQL server's own time is not in it), peak RSS and file size.
"""

from __future__ import annotations

import argparse
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

MODES = ("idle", "csv", "xlsx", "csv-all-in-memory")


def child(mode: str, url: str, out: Path) -> None:
    """Runs in its own process: one export, then its figures as one JSON line."""
    from ledger.db.engine import make_engine
    from ledger.reports import export as exporting
    from ledger.secret import Secret
    from ledger.settings import Settings

    engine = make_engine(Settings(database_url=Secret(url)))
    wall, cpu = time.perf_counter(), time.process_time()
    rows = 0
    if mode in ("csv", "xlsx"):
        with exporting.rows_of(engine, "usages", None, None) as (columns, stream):
            rows = exporting.write_file(columns, stream, mode, "en", out, "usages")
    elif mode == "csv-all-in-memory":  # what `ledger export` did before: fetch everything, then write
        columns, everything = exporting.fetch(engine, "usages", None, None)
        rows = exporting.write_file(columns, everything, "csv", "en", out, "usages")
    figures = {
        "mode": mode, "rows": rows, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "bytes": out.stat().st_size if out.exists() else 0,
    }  # fmt: skip
    print(json.dumps(figures))


def fill(url: str, rows: int) -> None:
    from ledger.db import migrate
    from ledger.db.engine import make_engine
    from ledger.secret import Secret
    from ledger.settings import Settings

    fresh_database(url)
    engine = make_engine(Settings(database_url=Secret(url)))
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO members (corp_num, name) SELECT (1234567890 + g)::text, '회원 ' || g "
                          "FROM generate_series(0, 19) g"))  # fmt: skip
        conn.execute(text(
            """
            INSERT INTO usages (member_id, row_key, occurrence, tx_dt, item_code, tx_type, tx_point, balance,
                                service_user_id, user_id, user_name, raw)
            SELECT 1 + g % 20, gen_random_uuid(), 0,
                   timestamptz '2026-01-01 09:00+09' + (g * interval '30 seconds'),
                   (ARRAY[110, 150, 151, 153, 182])[1 + g % 5], 2, 8.4, 1000000 - g * 0.1,
                   '', 'user01', '김하나', '{}'::jsonb
            FROM generate_series(1, :rows) g
            """), {"rows": rows})  # fmt: skip
        conn.execute(text("ANALYZE usages"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url", default=f"postgresql+psycopg://postgres@127.0.0.1:5432/ledger_bench_export_{os.getpid()}"
    )
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.database_url, args.out)
        return
    started = time.perf_counter()
    fill(args.database_url, args.rows)
    print(f"filled {args.rows:,} usage rows in {time.perf_counter() - started:.1f} s")
    results = []
    with tempfile.TemporaryDirectory(prefix="ledger-export-bench-") as folder:
        for mode in args.modes.split(","):
            out = Path(folder) / f"usages.{mode}"
            done = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--database-url", args.database_url, "--out", str(out)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            out.unlink(missing_ok=True)
            r = results[-1]
            print(f"{r['mode']:<18} rows {r['rows']:>9,}  wall {r['wall']:7.1f} s  cpu {r['cpu']:7.1f} s  "
                  f"peak RSS {r['peak_rss_mb']:7.1f} MB  file {r['bytes'] / 2**20:7.1f} MB", flush=True)  # fmt: skip
    by = {r["mode"]: r for r in results}
    if {"csv", "csv-all-in-memory"} <= set(by):
        print(f"streaming CSV against all rows in memory: peak RSS x{by['csv']['peak_rss_mb'] / by['csv-all-in-memory']['peak_rss_mb']:.2f}, "
              f"wall x{by['csv']['wall'] / by['csv-all-in-memory']['wall']:.2f}")  # fmt: skip
    if {"csv", "xlsx"} <= set(by):
        print(
            f"XLSX against CSV: wall x{by['xlsx']['wall'] / by['csv']['wall']:.1f}, cpu x{by['xlsx']['cpu'] / by['csv']['cpu']:.1f}"
        )
    if not args.keep:
        target = make_url(args.database_url)
        admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
