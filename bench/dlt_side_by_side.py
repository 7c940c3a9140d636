"""Initial sync of one large member: ledger against dlt, side by side, same simulator and server.

    python -m venv /tmp/dlt-venv && /tmp/dlt-venv/bin/pip install "dlt[postgres]"
    python bench/dlt_side_by_side.py --dlt-python /tmp/dlt-venv/bin/python [--rows 300000]

dlt is never a dependency of ledger: it runs in its own virtualenv, as a child process that
pages the same UseHistory windows (same token, per_page 1000) and loads them with its
postgres destination, merging on the row fields (csv files loaded with COPY by default, its
fastest; --dlt-format insert_values for its default loader).
Both write into fresh databases on the same PostgreSQL. Prints rows/s, wall and CPU time
(the process and its children), and the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sync_bench import free_port, fresh_database, simulated_today  # noqa: E402

from ledger.db import migrate  # noqa: E402
from ledger.db.engine import make_engine  # noqa: E402
from ledger.popbill import PopbillClient  # noqa: E402
from ledger.secret import Secret  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.sync.service import sync_member  # noqa: E402
from ledger.sync.windows import SyncOptions, first_day, windows  # noqa: E402

CORP = "1234567890"
HISTORY_DAYS = 365

# Runs in dlt's virtualenv; everything it needs comes in through the environment.
DLT_PIPELINE = r"""
import json, os, time, requests, dlt
url, token, spans = os.environ["SIM_URL"], os.environ["SIM_TOKEN"], json.loads(os.environ["SPANS"])
session = requests.Session()
session.headers.update({"Authorization": f"Bearer {token}", "x-pb-version": "1.0", "Accept-Encoding": "gzip"})

@dlt.resource(name="usages", write_disposition="merge",
              primary_key=["txDT", "itemCode", "txType", "txPoint", "balance", "serviceUserID", "userID", "userName"])
def usages():
    for start, end in spans:
        page = 1
        while True:
            answer = session.get(f"{url}/UseHistory", params={"SDate": start, "EDate": end, "Page": page,
                                                              "PerPage": 1000, "Order": "A"}, timeout=60).json()
            yield answer["list"]
            if page >= answer["pageCount"]:
                break
            page += 1

pipeline = dlt.pipeline(pipeline_name="i11_side_by_side", destination=dlt.destinations.postgres(os.environ["DLT_DB"]),
                        dataset_name="popbill", pipelines_dir=os.environ["DLT_DIR"])
started = time.perf_counter()
info = pipeline.run(usages(), loader_file_format=os.environ["DLT_FORMAT"])
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--dlt-python", required=True, help="python of a virtualenv with dlt[postgres]")
    parser.add_argument("--dlt-format", default="csv", help="dlt's loader file format: csv (COPY) or insert_values")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/ledger_side_by_side")
    args = parser.parse_args()

    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "ledger", "simulator", "--port", str(port), "--history-days", str(HISTORY_DAYS),
         "--usage-per-day", f"{args.rows / HISTORY_DAYS:.4f}"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        sim.stderr.readline()
        url = f"http://127.0.0.1:{port}"
        rows = requests.post(f"{url}/_sim/prepare", json={"corp_nums": [CORP]}, timeout=600).json()["usage_rows"]
        today = simulated_today(url)
        options = SyncOptions()
        spans = windows(first_day(None, today, options), today, options.window_days)
        settings = dataclasses.replace(Settings().with_hosts(url), database_url=Secret(args.database_url))
        with PopbillClient(settings) as client:
            for start, end in spans:  # warm the simulator's page cache for both runs
                for _ in client.iter_use_history(CORP, start, end, per_page=1000, order="A"):
                    pass
            token = client.requestor.tokens.get(CORP).session_token.reveal()

            fresh_database(args.database_url)
            engine = make_engine(settings)
            migrate.upgrade(engine)
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO members (corp_num) VALUES (%s)", (CORP,))
            cpu, wall = time.process_time(), time.perf_counter()
            result = sync_member(engine, client, CORP, "usage", today=today, options=options)
            ours_wall, ours_cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert result.status == "succeeded" and result.inserted == rows, result

        dlt_db = args.database_url.rsplit("/", 1)[0] + "/ledger_side_by_side_dlt"
        fresh_database(dlt_db)
        with tempfile.TemporaryDirectory(prefix="i11-dlt-") as pipelines_dir:
            # dlt insists on a password in the URL; a trust-auth server ignores it.
            with_password = make_url(dlt_db).set(password=make_url(dlt_db).password or "unused")
            env = {
                **os.environ, "SIM_URL": url, "SIM_TOKEN": token, "DLT_DIR": pipelines_dir,
                "DLT_DB": with_password.render_as_string(hide_password=False), "DLT_FORMAT": args.dlt_format,
                "SPANS": json.dumps([(f"{s:%Y%m%d}", f"{e:%Y%m%d}") for s, e in spans]),
            }  # fmt: skip
            cpu, wall = children_cpu(), time.perf_counter()
            done = subprocess.run([args.dlt_python, "-c", DLT_PIPELINE], env=env, capture_output=True, text=True)
            dlt_wall, dlt_cpu = time.perf_counter() - wall, children_cpu() - cpu
        if done.returncode != 0:
            raise SystemExit(f"dlt failed: {done.stderr[-3000:]}")
        print(f"one member, {rows:,} usage rows, {len(spans)} windows, same simulator and PostgreSQL")
        print(f"ledger  {rows / ours_wall:9,.0f} rows/s  wall {ours_wall:6.2f} s  client CPU {ours_cpu:6.2f} s")
        print(f"dlt     {rows / dlt_wall:9,.0f} rows/s  wall {dlt_wall:6.2f} s  client CPU {dlt_cpu:6.2f} s")
        with create_engine(make_url(dlt_db).set(drivername="postgresql+psycopg")).connect() as conn:
            loaded = conn.exec_driver_sql("SELECT count(*) FROM popbill.usages").scalar()
        print(f"dlt loaded {loaded:,} rows (its merge key would fold exact repeats that ledger keeps apart)")
        print(f"ledger / dlt throughput: {dlt_wall / ours_wall:.2f}x; client CPU {dlt_cpu / ours_cpu:.2f}x less")
    finally:
        sim.terminate()
        sim.wait(timeout=30)


if __name__ == "__main__":
    main()
