"""Initial sync of one large member: ledger against dlt, side by side, same simulator and server.

    python -m venv /tmp/dlt-venv && /tmp/dlt-venv/bin/pip install "dlt[postgres]"
    python bench/dlt_side_by_side.py --dlt-python /tmp/dlt-venv/bin/python [--rows 300000]
        [--database-url postgresql://postgres@127.0.0.1:5432/ledger_side_by_side]

dlt is never a dependency of ledger: it runs in its own virtualenv, as a child process that
pages the same UseHistory windows (same token, per_page 1000) and loads them with its
postgres destination, merging on the row fields (csv files loaded with COPY by default, its
fastest; --dlt-format insert_values for its default loader).
Both write into fresh databases on the same PostgreSQL: the one named by --database-url
for ledger, `<name>_dlt` for dlt, `<name>_ceiling` for the ceiling.

The ceiling: the same pages' bytes, fetched once and held in memory, loaded in this process
with no HTTP by the least work a faithful loader does: JSON decode with exact decimals, the
row key (ledger.history.identity), a COPY line with the typed columns and the raw row, and
COPY straight into usages (the initial sync's path: same table, indexes and constraints),
one transaction per page, the next page decoded in a second thread while one is COPYed.
Ledger's throughput is printed as a % of it.

Prints rows/s, wall and CPU time: the client (this process, or dlt's child process) and
the PostgreSQL backends serving that database (sampled from /proc while each runs), and the
simulator's (shared by ledger and dlt: far below the wall time, it is not what limits either);
and the ratios.
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
import threading
import time
from decimal import Decimal
from pathlib import Path

import orjson
import psycopg
import requests
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sync_bench import free_port, fresh_database, simulated_today  # noqa: E402

from ledger.db import migrate  # noqa: E402
from ledger.db.engine import make_engine  # noqa: E402
from ledger.history import identity  # noqa: E402
from ledger.history.writer import USAGE_COLUMNS, copy_field  # noqa: E402
from ledger.popbill import PopbillClient  # noqa: E402
from ledger.popbill.prefetch import prefetch  # noqa: E402
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


_TICK = os.sysconf("SC_CLK_TCK")


class BackendCPU:
    """CPU seconds of the PostgreSQL backends serving one database while a run lasts: /proc
    sampled every 50 ms (a backend that exits keeps its last sample); a backend already open
    when the run starts counts from then."""

    def __init__(self, database: str) -> None:
        self._title = f" {database} "
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().decode(errors="replace")
                if not title.startswith("postgres:") or self._title not in title:
                    continue
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
            self._first.setdefault(int(pid), cpu if not self._thread.is_alive() else 0.0)
            self._last[int(pid)] = cpu

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> BackendCPU:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(self._last[pid] - self._first[pid] for pid in self._last)


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def fetch_pages(url: str, token: str, spans) -> list[bytes]:
    """Every page's body, as the simulator sends it, fetched once."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "x-pb-version": "1.0"})
    bodies = []
    for start, end in spans:
        page = 1
        while True:
            params = {"SDate": f"{start:%Y%m%d}", "EDate": f"{end:%Y%m%d}", "Page": page, "PerPage": 1000, "Order": "A"}
            body = session.get(f"{url}/UseHistory", params=params, timeout=60).content
            bodies.append(body)
            if page >= json.loads(body)["pageCount"]:
                break
            page += 1
    return bodies


def _tx_dt(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]} {value[8:10]}:{value[10:12]}:{value[12:14]}+09"


def ceiling(database_url: str, member_id: int, bodies: list[bytes]) -> int:
    """The least a faithful loader does per page: decode (exact decimals), key, COPY line, COPY
    into usages, commit; the next page decoded in another thread while this one is COPYed (the
    overlap ledger has too). No screening, no HTTP, no sync state."""
    member = str(member_id)
    # The cheapest code for the same key (usage_key is row_key(r, USAGE_KEY), specialised).
    key = getattr(identity, "usage_key", None) or (lambda r: identity.row_key(r, identity.USAGE_KEY))
    columns = ", ".join(USAGE_COLUMNS)

    def pages():
        occurrences = {}
        for body in bodies:
            lines = []
            for r in json.loads(body, parse_float=Decimal)["list"]:
                k = key(r)
                n = occurrences.get(k, 0)
                occurrences[k] = n + 1
                lines.append(
                    f"{member}\t{k}\t{n}\t{_tx_dt(r['txDT'])}\t{r['itemCode']}\t{r['txType']}\t{r['txPoint']}\t"
                    f"{r['balance']}\t{copy_field(r.get('serviceUserID'))}\t{copy_field(r.get('userID'))}\t"
                    f"{copy_field(r.get('userName'))}\t{copy_field(orjson.dumps(r).decode())}\n"
                )
            yield "".join(lines), len(lines)

    rows = 0
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as conn:
        for text, n in prefetch(pages()):
            with conn.cursor().copy(f"COPY usages ({columns}) FROM STDIN") as copy:
                copy.write(text)
            conn.commit()
            rows += n
    return rows


def fresh_ledger_database(url: str, settings: Settings):
    fresh_database(url)
    engine = make_engine(dataclasses.replace(settings, database_url=Secret(url)))
    migrate.upgrade(engine)
    with engine.begin() as conn:
        member_id = conn.exec_driver_sql("INSERT INTO members (corp_num) VALUES (%s) RETURNING id", (CORP,)).scalar()
    return engine, member_id


def sibling(url: str, suffix: str) -> str:
    """The database next to url's, named after it: two helpers' runs never share one."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}{suffix}").render_as_string(hide_password=False)


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

            bodies = fetch_pages(url, token, spans)

            engine, _ = fresh_ledger_database(args.database_url, settings)
            with BackendCPU(make_url(args.database_url).database) as ours_db:
                sim_cpu, cpu, wall = process_cpu(sim.pid), time.process_time(), time.perf_counter()
                result = sync_member(engine, client, CORP, "usage", today=today, options=options)
                ours_wall, ours_cpu = time.perf_counter() - wall, time.process_time() - cpu
                ours_sim = process_cpu(sim.pid) - sim_cpu
            engine.dispose()
            assert result.status == "succeeded" and result.inserted == rows, result

        ceiling_db = sibling(args.database_url, "_ceiling")
        engine, member_id = fresh_ledger_database(ceiling_db, settings)
        engine.dispose()
        with BackendCPU(make_url(ceiling_db).database) as ceiling_backend:
            cpu, wall = time.process_time(), time.perf_counter()
            assert ceiling(ceiling_db, member_id, bodies) == rows
            ceiling_wall, ceiling_cpu = time.perf_counter() - wall, time.process_time() - cpu

        dlt_db = sibling(args.database_url, "_dlt")
        fresh_database(dlt_db)
        with tempfile.TemporaryDirectory(prefix="i11-dlt-") as pipelines_dir:
            # dlt insists on a password in the URL; a trust-auth server ignores it.
            with_password = make_url(dlt_db).set(password=make_url(dlt_db).password or "unused")
            env = {
                **os.environ, "SIM_URL": url, "SIM_TOKEN": token, "DLT_DIR": pipelines_dir,
                "DLT_DB": with_password.render_as_string(hide_password=False), "DLT_FORMAT": args.dlt_format,
                "SPANS": json.dumps([(f"{s:%Y%m%d}", f"{e:%Y%m%d}") for s, e in spans]),
            }  # fmt: skip
            with BackendCPU(make_url(dlt_db).database) as dlt_backend:
                sim_cpu, cpu, wall = process_cpu(sim.pid), children_cpu(), time.perf_counter()
                done = subprocess.run([args.dlt_python, "-c", DLT_PIPELINE], env=env, capture_output=True, text=True)
                dlt_wall, dlt_cpu = time.perf_counter() - wall, children_cpu() - cpu
                dlt_sim = process_cpu(sim.pid) - sim_cpu
        if done.returncode != 0:
            raise SystemExit(f"dlt failed: {done.stderr[-3000:]}")
        print(f"one member, {rows:,} usage rows, {len(spans)} windows, same simulator and PostgreSQL")
        print("          rows/s      wall   client CPU   PostgreSQL CPU   simulator CPU")
        for name, w, c, b, m in (
            ("ledger", ours_wall, ours_cpu, ours_db.seconds, f"{ours_sim:6.2f} s"),
            ("ceiling", ceiling_wall, ceiling_cpu, ceiling_backend.seconds, "     -"),
            ("dlt", dlt_wall, dlt_cpu, dlt_backend.seconds, f"{dlt_sim:6.2f} s"),
        ):
            print(f"{name:8} {rows / w:9,.0f}  {w:6.2f} s     {c:6.2f} s         {b:6.2f} s        {m}")
        with create_engine(make_url(dlt_db).set(drivername="postgresql+psycopg")).connect() as conn:
            loaded = conn.exec_driver_sql("SELECT count(*) FROM popbill.usages").scalar()
        print(f"dlt loaded {loaded:,} rows (its merge key would fold exact repeats that ledger keeps apart)")
        print(f"ledger / dlt throughput: {dlt_wall / ours_wall:.2f}x; client CPU {dlt_cpu / ours_cpu:.2f}x less")
        print(f"ledger / ceiling throughput: {100 * ceiling_wall / ours_wall:.0f}%; "
              f"client CPU {ours_cpu / ceiling_cpu:.2f}x the ceiling's")  # fmt: skip
    finally:
        sim.terminate()
        sim.wait(timeout=30)


if __name__ == "__main__":
    main()
