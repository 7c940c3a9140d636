"""Initial sync of usage: ledger against dlt, in fresh processes, alternating, beside honest ceilings.

    python -m venv /tmp/dlt-venv && /tmp/dlt-venv/bin/pip install "dlt[postgres]==1.31.*"
    nice python bench/dlt_side_by_side.py --dlt-python /tmp/dlt-venv/bin/python
        [--members 20] [--rows 1000000] [--rounds 2] [--processes 2] [--jobs 2]
        [--contenders ledger,dlt,ceiling-1,ceiling-2] [--base-code /path/to/another/tree]

Every contender runs as a fresh process of its own, timed from the outside from its start to
its exit (start-up counted for all), with nothing sampling inside it:
- ledger: `python -m ledger sync --kind usage --processes P --jobs J`, what a user runs;
  ledger-1 is the same in one process (--processes 1);
- base: the same command run from the source tree --base-code (an A/B against other code;
  `--processes` only if that tree has it);
- dlt: a dlt pipeline (its own virtualenv, --dlt-python) paging the same UseHistory windows
  of every member (same tokens, PerPage 1000, gzip) into its postgres destination, merging on
  the member and the row fields, loaded from csv files by COPY (its fastest loader);
- ceiling-1 and ceiling-2: the least a faithful loader does, with no HTTP: the page bodies
  (fetched beforehand, read from a file) decoded by orjson, each row's key (a BLAKE2b of its
  fields) and occurrence, a COPY line of the typed columns and the raw row, COPY into the
  ledger's own `usages` table (same indexes and constraints), one transaction per page
  committed without waiting for the WAL flush (as ledger's pages are), the next page decoded
  in a second thread while one is written; in one process, and with the members shared
  between two.

Each round runs every contender once; the order alternates (reversed every other round), so
drift in the machine's load falls on all of them alike.

PostgreSQL is a private server started for the bench (initdb's defaults, in a temporary
folder), so what the contenders cost it is measured exactly, with no sampler: the CPU of all
its processes, read before and after each run (a backend that exited is counted in the
postmaster's children's time). A CHECKPOINT before each run, and autovacuum off, keep one
run's deferred work from being counted to the next. Every run gets a fresh database; the schema and the members
are made before the clock starts (dlt makes its own tables inside its run). The simulator
runs in its own process, its page cache warmed before the first run; its CPU per run is
printed apart (shared, and far from what limits either side).

Prints every run (wall, client CPU: the process and its children, PostgreSQL CPU, simulator
CPU, µs of CPU per row), then per round the throughput ratios against dlt and the ceilings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
HISTORY_DAYS = 365
PER_PAGE = 1000
_TICK = os.sysconf("SC_CLK_TCK")

# Runs in dlt's virtualenv; everything comes in through the environment.
DLT_PIPELINE = r"""
import json, os, requests, dlt
url, spans = os.environ["SIM_URL"], json.loads(os.environ["SPANS"])
tokens = json.loads(os.environ["SIM_TOKENS"])
session = requests.Session()
session.headers.update({"x-pb-version": "1.0", "Accept-Encoding": "gzip"})
KEY = ["corpNum", "txDT", "itemCode", "txType", "txPoint", "balance", "serviceUserID", "userID", "userName"]

@dlt.resource(name="usages", write_disposition="merge", primary_key=KEY)
def usages():
    for corp, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"}
        for start, end in spans:
            page = 1
            while True:
                answer = session.get(f"{url}/UseHistory", headers=headers, timeout=60, params={
                    "SDate": start, "EDate": end, "Page": page, "PerPage": 1000, "Order": "A"}).json()
                rows = answer["list"]
                for row in rows:
                    row["corpNum"] = corp
                yield rows
                if page >= answer["pageCount"]:
                    break
                page += 1

pipeline = dlt.pipeline(pipeline_name="side_by_side", destination=dlt.destinations.postgres(os.environ["DLT_DB"]),
                        dataset_name="popbill", pipelines_dir=os.environ["DLT_DIR"])
pipeline.run(usages(), loader_file_format=os.environ["DLT_FORMAT"])
"""

# Runs with the ledger tree on the path: argv = database URL, bodies file, processes.
CEILING = r"""
import hashlib, multiprocessing, pickle, sys
import orjson, psycopg
from ledger.history.writer import USAGE_COLUMNS
from ledger.popbill.prefetch import prefetch

url, bodies_file, processes = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(bodies_file, "rb") as f:
    members = pickle.load(f)  # [(member_id, [page body, ...]), ...]
COPY = f"COPY usages ({', '.join(USAGE_COLUMNS)}) FROM STDIN"

def lines(member, bodies):
    seen, digest, dumps = {}, hashlib.blake2b, orjson.dumps
    for body in bodies:
        out = []
        for r in orjson.loads(body)["list"]:
            t, item, kind, point, balance = r["txDT"], r["itemCode"], r["txType"], r["txPoint"], r["balance"]
            su, user, name = r["serviceUserID"], r["userID"], r["userName"]
            key = digest(f"{t}\x1f{item}\x1f{kind}\x1f{point}\x1f{balance}\x1f{su}\x1f{user}\x1f{name}".encode(),
                         digest_size=16).hexdigest()
            n = seen.get(key, 0)
            seen[key] = n + 1
            out.append(f"{member}\t{key}\t{n}\t{t[:4]}-{t[4:6]}-{t[6:8]} {t[8:10]}:{t[10:12]}:{t[12:]}+09\t{item}\t"
                       f"{kind}\t{point}\t{balance}\t{su}\t{user}\t{name}\t".encode() + dumps(r).replace(b"\\", b"\\\\")
                       + b"\n")
        yield b"".join(out)

def load(share):
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")  # as ledger's page transactions: no WAL flush wait
        for member, bodies in share:
            for data in prefetch(lines(member, bodies)):
                with conn.cursor().copy(COPY) as copy:
                    copy.write(data)
                conn.commit()

if processes == 1:
    load(members)
else:
    workers = [multiprocessing.get_context("fork").Process(target=load, args=(members[i::processes],))
               for i in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
        assert w.exitcode == 0, w.exitcode
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu(pid: int, children: bool = False) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / _TICK


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class PrivatePostgres:
    """A PostgreSQL server of the bench's own, so its CPU is the contenders' alone."""

    def __init__(self, bindir: Path) -> None:
        self.bindir, self.port = bindir, free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="side-by-side-pg-"))
        self.data = self.folder / "data"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.folder, "postgres", "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "start", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c autovacuum=off")  # fmt: skip
        self.postmaster = int((self.data / "postmaster.pid").read_text().split()[0])

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as_owner, str(self.bindir / tool), *args], check=True, capture_output=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def fresh(self, database: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)

    def checkpoint(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CHECKPOINT")

    def cpu(self) -> float:
        """Every process of the server: the postmaster with its exited children, and the live ones."""
        total = process_cpu(self.postmaster, children=True)
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    with open(f"/proc/{pid}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == self.postmaster:
                            total += process_cpu(int(pid))
        return total

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def tree_env(tree: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_", "PYTHONPATH"))}
    return {**env, "PYTHONPATH": str(tree), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage rows in all")
    parser.add_argument("--rounds", type=int, default=2, help="every contender once per round")
    parser.add_argument("--processes", type=int, default=2, help="ledger's --processes")
    parser.add_argument("--jobs", type=int, default=2, help="ledger's --jobs")
    parser.add_argument("--contenders", default="ledger,dlt,ceiling-1,ceiling-2")
    parser.add_argument("--dlt-python", help="python of a virtualenv with dlt[postgres]")
    parser.add_argument("--dlt-format", default="csv", help="dlt's loader file format: csv (COPY) or insert_values")
    parser.add_argument("--base-code", type=Path, help="another ledger source tree, run as the contender 'base'")
    parser.add_argument("--postgres-bin", type=Path, default=Path("/usr/lib/postgresql/15/bin"))
    args = parser.parse_args()
    contenders = args.contenders.split(",")
    if "dlt" in contenders and not args.dlt_python:
        parser.error("--dlt-python is needed to run dlt")
    if "base" in contenders and not args.base_code:
        parser.error("--base-code is needed to run base")

    # Stopped (Ctrl-C, or SIGTERM: a background job ignores SIGINT), the finally below still
    # stops the simulator and the private server and removes their folders.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, str(ROOT))
    from ledger.popbill import PopbillClient
    from ledger.settings import Settings
    from ledger.sync.windows import SyncOptions, first_day, windows

    work = Path(tempfile.mkdtemp(prefix="side-by-side-"))
    postgres = PrivatePostgres(args.postgres_bin)
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "ledger", "simulator", "--port", str(port), "--seed", "1",
         "--history-days", str(HISTORY_DAYS), "--usage-per-day", f"{args.rows / args.members / HISTORY_DAYS:.4f}"],
        stderr=subprocess.PIPE, text=True, cwd=work, env=tree_env(ROOT),
    )  # fmt: skip
    try:
        sim.stderr.readline()
        url = f"http://127.0.0.1:{port}"
        corps = [f"{1000000000 + 7919 * n:010d}" for n in range(args.members)]
        rows = requests.post(f"{url}/_sim/prepare", json={"corp_nums": corps}, timeout=3600).json()["usage_rows"]
        today = requests.get(f"{url}/_sim/clock", timeout=10).json()["now"][:10]
        import datetime as dt

        options = SyncOptions()
        spans = windows(first_day(None, dt.date.fromisoformat(today), options), dt.date.fromisoformat(today),
                        options.window_days)  # fmt: skip
        with PopbillClient(Settings().with_hosts(url)) as client:
            tokens = {corp: client.requestor.tokens.get(corp).session_token.reveal() for corp in corps}
        bodies = fetch_bodies(url, tokens, spans)  # also warms the simulator's page cache
        print(f"{args.members} members, {rows:,} usage rows, {len(spans)} windows of {options.window_days} days, "
              f"{sum(len(b) for b in bodies.values()):,} pages; simulator and PostgreSQL private to this run; "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip

        runs: list[dict] = []
        for round_no in range(args.rounds):
            order = contenders if round_no % 2 == 0 else contenders[::-1]
            for name in order:
                run = run_contender(name, args, postgres, sim.pid, url, corps, tokens, spans, bodies, work)
                run["round"] = round_no + 1
                if run["rows"] != rows:
                    raise SystemExit(f"{name} loaded {run['rows']:,} rows, not {rows:,}")
                runs.append(run)
                show(run, rows)
        report(runs, contenders, rows)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


def fetch_bodies(url: str, tokens: dict, spans) -> dict[str, list[bytes]]:
    """Every page's body, as the simulator sends it: for the ceilings, and to warm its cache."""
    session = requests.Session()
    bodies: dict[str, list[bytes]] = {}
    for corp, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}", "x-pb-version": "1.0", "Accept-Encoding": "gzip"}
        for start, end in spans:
            page = 1
            while True:
                params = {"SDate": f"{start:%Y%m%d}", "EDate": f"{end:%Y%m%d}", "Page": page, "PerPage": PER_PAGE,
                          "Order": "A"}  # fmt: skip
                body = session.get(f"{url}/UseHistory", params=params, headers=headers, timeout=60).content
                bodies.setdefault(corp, []).append(body)
                if page >= json.loads(body)["pageCount"]:
                    break
                page += 1
    return bodies


def run_contender(name, args, postgres, sim_pid, url, corps, tokens, spans, bodies, work) -> dict:
    database = name.replace("-", "_")
    db_url = postgres.fresh(database)
    tree = args.base_code if name == "base" else ROOT
    if name != "dlt":
        subprocess.run([sys.executable, "-m", "ledger", "db", "upgrade"], check=True, capture_output=True, cwd=work,
                       env=tree_env(tree, LEDGER_DATABASE_URL=db_url))  # fmt: skip
        with psycopg.connect(db_url) as conn:
            ids = [conn.execute("INSERT INTO members (corp_num) VALUES (%s) RETURNING id", (c,)).fetchone()[0]
                   for c in corps]  # fmt: skip
    if name in ("ledger", "ledger-1", "base"):
        command = [sys.executable, "-m", "ledger", "sync", "--kind", "usage", "--jobs", str(args.jobs), "--json"]
        if name == "ledger-1":
            command += ["--processes", "1"]
        elif name == "ledger" or (tree / "ledger" / "sync" / "processes.py").exists():
            command += ["--processes", str(args.processes)]
        env = tree_env(tree, LEDGER_DATABASE_URL=db_url, POPBILL_API_URL=url, LINKHUB_AUTH_URL=url)
    elif name == "dlt":
        pipelines = work / "dlt-pipelines"
        shutil.rmtree(pipelines, ignore_errors=True)
        command = [args.dlt_python, "-c", DLT_PIPELINE]
        env = {
            **{k: v for k, v in tree_env(ROOT).items() if k != "PYTHONPATH"}, "SIM_URL": url, "SIM_TOKENS": json.dumps(tokens), "DLT_DIR": str(pipelines),
            "DLT_DB": db_url.replace("postgres@", "postgres:unused@"),  # dlt insists on a password; trust ignores it
            "DLT_FORMAT": args.dlt_format, "SPANS": json.dumps([(f"{s:%Y%m%d}", f"{e:%Y%m%d}") for s, e in spans]),
        }  # fmt: skip
    else:
        processes = int(name.rsplit("-", 1)[1])
        with open(work / f"{database}.pickle", "wb") as f:
            pickle.dump(list(zip(ids, (bodies[c] for c in corps), strict=True)), f)
        command = [sys.executable, "-c", CEILING, db_url, str(work / f"{database}.pickle"), str(processes)]
        env = tree_env(ROOT)
    postgres.checkpoint()  # what runs before left unwritten is not counted to this one
    pg, simulator, client = postgres.cpu(), process_cpu(sim_pid), children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - started
    client, pg, simulator = children_cpu() - client, postgres.cpu() - pg, process_cpu(sim_pid) - simulator
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr[-3000:]}")
    table = "popbill.usages" if name == "dlt" else "usages"
    with psycopg.connect(db_url) as conn:
        loaded = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return {"name": name, "wall": wall, "client": client, "pg": pg, "sim": simulator, "rows": loaded}


def show(run: dict, rows: int) -> None:
    print(f"round {run['round']}  {run['name']:10} {rows / run['wall']:9,.0f} rows/s  wall {run['wall']:7.2f} s  "
          f"client CPU {run['client']:7.2f} s  PostgreSQL CPU {run['pg']:6.2f} s  simulator {run['sim']:6.2f} s  "
          f"per row: client {run['client'] / rows * 1e6:5.1f} µs + PostgreSQL {run['pg'] / rows * 1e6:5.1f} µs",
          flush=True)  # fmt: skip


def report(runs: list[dict], contenders: list[str], rows: int) -> None:
    print("\nratios of throughput (wall time of the other / wall time of the first), per round:")
    rounds = sorted({r["round"] for r in runs})
    by = {(r["round"], r["name"]): r for r in runs}
    ledgers = [c for c in contenders if c in ("ledger", "ledger-1", "base")]
    pairs = [(a, b) for a in contenders for b in ("dlt", "ceiling-1", "ceiling-2", "base")
             if a != b and b in contenders and a != "dlt" and (a in ledgers or b == "dlt")]  # fmt: skip
    for a, b in pairs:
        ratios = [by[(n, b)]["wall"] / by[(n, a)]["wall"] for n in rounds]
        cpu = [(by[(n, b)]["client"] + by[(n, b)]["pg"]) / (by[(n, a)]["client"] + by[(n, a)]["pg"]) for n in rounds]
        print(f"  {a:10} / {b:10} throughput {' '.join(f'{x:5.2f}x' for x in ratios)}   "
              f"CPU (client + PostgreSQL) of {b} / of {a}: {' '.join(f'{x:5.2f}x' for x in cpu)}")
    print("\nmedians:")
    for name in contenders:
        mine = [r for r in runs if r["name"] == name]
        wall = statistics.median(r["wall"] for r in mine)
        client = statistics.median(r["client"] for r in mine)
        pg = statistics.median(r["pg"] for r in mine)
        print(f"  {name:10} {rows / wall:9,.0f} rows/s  wall {wall:7.2f} s  CPU client {client:7.2f} s + PostgreSQL "
              f"{pg:6.2f} s  = {(client + pg) / rows * 1e6:5.1f} µs per row "
              f"({client / rows * 1e6:.1f} + {pg / rows * 1e6:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
