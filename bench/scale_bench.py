"""Scale benchmark: many members with light histories, under real network latency.

    python bench/scale_bench.py [--members 10000] [--latency-ms 60] [--jobs 32]
                                [--workers 3] [--worker-threads 8] [--paths cli,celery]
                                [--phases initial,resync] [--seed-ledger clone]

The simulator runs in its own process and waits `--latency-ms` on the server side before
every answer (real waiting, not CPU). For each path (`ledger sync --jobs N` as a child
process; several real Celery worker processes fed by the nightly fan-out) it runs the
initial sync and then the nightly re-sync with no new data, and prints:

- members/s (wall);
- CPU ms per member: the client processes' CPU time (user+system, measured by the OS)
  plus the CPU time of the PostgreSQL backends serving them (read from /proc while they run);
- API calls per member (every request the simulator answered, tokens included) against the
  minimum (one token and one call per history kind and date window);
- peak RSS of the client processes, and the most PostgreSQL connections open at once.

PostgreSQL must run on this machine (backend CPU is read from /proc/<pid>/stat).

`--phases resync --seed-ledger clone` measures the re-sync of many members without first
paying for their initial sync (at 100,000 members that alone takes half an hour): the
simulator's members share `--templates` histories (by CorpNum modulo N), one member of each
is synced for real with `ledger sync --member`, and its ledger (rows, sync states, runs and
lease rows) is copied by SQL to the members sharing its history: what the initial sync would
have written for each. The re-sync then prints the rows it wrote: 0 inserted and 0 updated
shows the copy was faithful.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sync_bench import free_port, fresh_database  # noqa: E402 - the sibling benchmark's helpers

from ledger.db import migrate  # noqa: E402
from ledger.db.engine import make_engine  # noqa: E402
from ledger.secret import Secret  # noqa: E402
from ledger.settings import Settings  # noqa: E402

KINDS = 3
TICKS = os.sysconf("SC_CLK_TCK")
LEDGER_TABLES = "usages, payments, refunds, state_changes, sync_states, sync_runs, balance_snapshots"


def process_cpu(pid: int) -> float | None:
    """user+system seconds of a process, from /proc (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


class Sampler:
    """Runs _run() in a thread for the length of a with block."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class BackendWatch(Sampler):
    """Samples the PostgreSQL backends of one database: their CPU and how many are open.
    A backend's CPU after its last sample is missed (at most one interval's worth)."""

    def __init__(self, engine, database: str, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.engine, self.database = engine, database
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.peak = 0

    def _run(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SET application_name = 'scale_bench_watch'"))
            query = text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            first_round = True
            while not self._stop.is_set():
                pids = [row.pid for row in conn.execute(query, {"db": self.database})]
                conn.commit()
                self.peak = max(self.peak, len(pids))
                for pid in pids:
                    cpu = process_cpu(pid)
                    if cpu is None:
                        continue
                    # Backends alive at the start count from there; new ones from zero.
                    self.first.setdefault(pid, cpu if first_round else 0.0)
                    self.last[pid] = cpu
                first_round = False
                self._stop.wait(self.interval)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


class ClientWatch(Sampler):
    """Peak RSS of a set of processes (and their children), sampled."""

    def __init__(self, pids, interval: float = 0.1) -> None:
        super().__init__(interval)
        self.pids, self.peak = list(pids), 0

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                try:
                    self.peak = max(self.peak, tree_rss(pid))
                except psutil.Error:
                    continue
            self._stop.wait(self.interval)


def tree_rss(pid: int) -> int:
    """A process's RSS and its children's, in bytes."""
    proc = psutil.Process(pid)
    return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))


def tree_cpu(pid: int) -> float:
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


@dataclasses.dataclass
class Figures:
    path: str
    phase: str
    members: int
    wall: float
    client_cpu: float
    pg_cpu: float
    calls: int
    tokens: int
    minimum_calls: int
    peak_rss_mb: float
    pg_connections: int

    def measure(self, key: str) -> float:
        per_member = 1000 / self.members
        return {
            "total": (self.client_cpu + self.pg_cpu) * per_member, "client": self.client_cpu * per_member,
            "pg": self.pg_cpu * per_member, "wall": self.wall, "calls": self.calls / self.members,
        }[key]  # fmt: skip

    def print(self) -> None:
        m = self.members
        print(
            f"{self.path:<7} {self.phase:<8} {m / self.wall:8.1f} members/s  wall {self.wall:7.1f} s  "
            f"CPU/member {1000 * (self.client_cpu + self.pg_cpu) / m:6.2f} ms "
            f"(client {1000 * self.client_cpu / m:.2f} + PG {1000 * self.pg_cpu / m:.2f})  "
            f"calls/member {self.calls / m:.2f} (tokens {self.tokens / m:.2f}; minimum {self.minimum_calls / m:.2f})  "
            f"peak RSS {self.peak_rss_mb:.0f} MB  PG connections {self.pg_connections}",
            flush=True,
        )


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.port = free_port()
        self.sim_url = f"http://127.0.0.1:{self.port}"
        self.db_name = make_url(args.database_url).database
        self.corp_nums = [f"{1000000000 + 7919 * n:010d}" for n in range(args.members)]
        self.code = Path(args.code).resolve() if args.code else ROOT
        self.token_cache = Path(tempfile.mkdtemp(prefix="scale_bench_tokens_")) / "tokens.sqlite3"

    # -- set-up ---------------------------------------------------------------------------

    def start_simulator(self) -> None:
        a = self.args
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "ledger", "simulator", "--port", str(self.port), "--seed", "1",
             "--history-days", str(a.history_days), "--usage-per-day", str(a.usage_per_day),
             "--distinct-histories", str(a.templates if a.seed_ledger == "clone" else 0)],
            stderr=subprocess.PIPE, text=True, env={**self.env(), "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        self.sim.stderr.readline()
        started = time.perf_counter()
        for n in range(0, len(self.corp_nums), 5000):
            requests.post(f"{self.sim_url}/_sim/prepare", json={"corp_nums": self.corp_nums[n : n + 5000]}, timeout=600)
        print(f"simulator: {len(self.corp_nums):,} members prepared in {time.perf_counter() - started:.1f} s")
        if a.latency_ms:
            requests.post(
                f"{self.sim_url}/_sim/faults",
                json={"kind": "latency", "rate": 1.0, "seconds": a.latency_ms / 1000},
                timeout=10,
            ).raise_for_status()

    def env(self, code: Path | None = None) -> dict[str, str]:
        a = self.args
        return {
            **os.environ,
            "LEDGER_DATABASE_URL": a.database_url,
            "POPBILL_API_URL": self.sim_url,
            "LINKHUB_AUTH_URL": self.sim_url,
            "LEDGER_BROKER_URL": a.broker_url,
            "LEDGER_SYNC_INITIAL_DAYS": str(a.initial_days),
            "POPBILL_MAX_CONCURRENCY": str(a.max_concurrency),
            "PYTHONPATH": str(code or self.code),  # the code under test; the simulator is always this tree's
            # Tokens kept between the runs' processes until they expire, as on Linkhub's hosts
            # (a tree without the setting ignores it).
            "POPBILL_TOKEN_CACHE": str(self.token_cache) if a.token_cache == "on" else "off",
        }

    def setup_database(self) -> None:
        fresh_database(self.args.database_url)
        settings = Settings(database_url=Secret(self.args.database_url))
        self.engine = make_engine(settings)
        migrate.upgrade(self.engine)
        with self.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO members (corp_num, name) SELECT c, 'member ' || c FROM unnest(CAST(:c AS text[])) c"),
                {"c": self.corp_nums},
            )

    def clone_ledger(self) -> None:
        """Sync one member of each shared history for real, then copy its ledger to the others."""
        templates = {}
        for corp in self.corp_nums:
            templates.setdefault(int(corp) % self.args.templates, corp)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "ledger", "sync", "--json", *(f"--member={c}" for c in templates.values())],
            env=self.env(), cwd=self.code, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"ledger sync of the template members failed ({done.returncode}): {done.stderr[-2000:]}")
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TEMP TABLE clone_map AS SELECT t.id AS source, m.id AS target FROM members m "
                    "JOIN members t ON t.corp_num = ANY(:templates) "
                    "AND t.corp_num::bigint % :n = m.corp_num::bigint % :n AND m.id <> t.id"
                ),
                {"templates": list(templates.values()), "n": self.args.templates},
            )
            for table in ("usages", "payments", "refunds", "sync_states", "sync_runs", "sync_locks"):
                # Every column but a generated id, with member_id swapped for each other member's.
                columns = conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                        "AND table_name = :t AND column_name <> 'member_id' "
                        "AND coalesce(column_default, '') NOT LIKE 'nextval(%' ORDER BY ordinal_position"
                    ),
                    {"t": table},
                ).scalars().all()  # fmt: skip
                listed = ", ".join(columns)
                picked = ", ".join(f"t.{c}" for c in columns)
                conn.execute(
                    text(
                        f"INSERT INTO {table} (member_id, {listed}) SELECT c.target, {picked} "
                        f"FROM {table} t JOIN clone_map c ON c.source = t.member_id"
                    )
                )
            copied = conn.execute(text("SELECT count(*) FROM usages")).scalar()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        print(
            f"ledger seeded: {len(templates)} members synced for real, copied to the other "
            f"{len(self.corp_nums) - len(templates):,} ({copied:,} usage rows in all) "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

    def rows_written(self, since_run: int) -> tuple[int, int]:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT coalesce(sum(rows_inserted), 0), coalesce(sum(rows_updated), 0) FROM sync_runs WHERE id > :b"
                ),
                {"b": since_run},
            ).one()
        return int(row[0]), int(row[1])

    def last_run(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT coalesce(max(id), 0) FROM sync_runs")).scalar()

    def empty_ledger(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {LEDGER_TABLES}"))
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))

    def counts(self) -> tuple[int, int]:
        counts = requests.get(f"{self.sim_url}/_sim/counts", timeout=30).json()["counts"]
        return sum(counts.values()), sum(n for k, n in counts.items() if k.startswith("Token"))

    # -- paths ----------------------------------------------------------------------------

    def run_cli(self, code: Path | None = None) -> tuple[float, float, float]:
        command = [sys.executable, "-m", "ledger", "sync", "--jobs", str(self.args.jobs), "--json"]
        code = code or self.code
        started = time.perf_counter()
        proc = subprocess.Popen(
            command, env=self.env(code), cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        with ClientWatch([proc.pid]) as rss:
            _, err = proc.communicate()
            # The child is reaped: wait4's rusage is its exact CPU time.
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"ledger sync failed ({proc.returncode}): {err[-2000:]}")
        return wall, self._last_child_cpu(), rss.peak

    def _last_child_cpu(self) -> float:
        import resource

        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = usage.ru_utime + usage.ru_stime
        spent, self._children_cpu = total - getattr(self, "_children_cpu", 0.0), total
        return spent

    def start_workers(self) -> None:
        a = self.args
        self.workers = []
        for n in range(a.workers):
            self.workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "workers",
                        "worker",
                        "-P",
                        "threads",
                        "-c",
                        str(a.worker_threads),
                        "-n",
                        f"scale{n}-{os.getpid()}@%h",
                        "-l",
                        "WARNING",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                    ],
                    env=self.env(),
                    cwd=self.code,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
        from celery import Celery

        self.app = Celery("scale_bench", broker=a.broker_url)
        with self.app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()  # the benchmark's own Redis db
        time.sleep(3)  # let the workers connect; not part of any figure

    def stop_workers(self) -> None:
        for w in self.workers:
            w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
        self._last_child_cpu()  # the workers' CPU was counted while they ran

    def fan_out(self) -> None:
        """The nightly fan-out's enqueueing, timed on a scratch queue nobody consumes: member
        groups as it sends them, and one message per member and kind as it used to."""
        from celery import Celery

        app = Celery("scale_bench_fanout", broker=self.args.broker_url)
        size = Settings.from_env(self.env()).sync_members_per_task
        for label, messages in (
            (f"groups of {size}", [("ledger.sync.members", [self.corp_nums[n : n + size]])
                                   for n in range(0, len(self.corp_nums), size)]),
            ("one per member x kind", [("ledger.sync.member", [c, k]) for c in self.corp_nums
                                       for k in ("payments", "usage", "refunds")]),
        ):  # fmt: skip
            started, cpu = time.perf_counter(), time.process_time()
            with app.producer_or_acquire() as producer:
                for name, args in messages:
                    app.send_task(name, args=args, queue="scale_bench_fanout", producer=producer)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            with app.connection_for_write() as conn:
                conn.default_channel.client.delete("scale_bench_fanout")
            print(
                f"fan-out of {len(self.corp_nums):,} members, {label}: {len(messages):,} messages "
                f"in {wall:.2f} s (CPU {cpu:.2f} s)",
                flush=True,
            )

    def run_celery(self) -> tuple[float, float, float]:
        expected = len(self.corp_nums) * KINDS
        with self.engine.connect() as conn:
            before = conn.execute(text("SELECT coalesce(max(id), 0) FROM sync_runs")).scalar()
        cpu_before = sum(tree_cpu(w.pid) for w in self.workers)
        started = time.perf_counter()
        with ClientWatch([w.pid for w in self.workers]) as rss:
            self.app.send_task("ledger.sync.nightly", kwargs={"from_beat": False})
            with self.engine.connect() as conn:
                while True:
                    done = conn.execute(
                        text("SELECT count(*) FROM sync_runs WHERE id > :b AND status <> 'running'"), {"b": before}
                    ).scalar()
                    conn.commit()
                    if done >= expected:
                        break
                    if any(w.poll() is not None for w in self.workers):
                        raise SystemExit("a worker died")
                    time.sleep(0.25)
            wall = time.perf_counter() - started
        cpu = sum(tree_cpu(w.pid) for w in self.workers) - cpu_before
        with self.engine.connect() as conn:
            failed = conn.execute(
                text("SELECT count(*) FROM sync_runs WHERE id > :b AND status = 'failed'"), {"b": before}
            ).scalar()
        if failed:
            raise SystemExit(f"{failed} syncs failed")
        return wall, cpu, rss.peak

    def phase(self, path: str, phase: str, code: Path | None = None, label: str | None = None) -> Figures:
        if phase == "initial":
            self.empty_ledger()
        calls_before, tokens_before = self.counts()
        run_before = self.last_run()
        with BackendWatch(self.engine, self.db_name) as pg:
            wall, cpu, rss = self.run_cli(code) if path == "cli" else self.run_celery()
        calls, tokens = self.counts()
        figures = Figures(
            label or path, phase, len(self.corp_nums), wall, cpu, pg.cpu_seconds, calls - calls_before, tokens - tokens_before,
            self.minimum(phase), rss / 2**20, pg.peak,
        )  # fmt: skip
        figures.print()
        inserted, updated = self.rows_written(run_before)
        print(f"        rows written: {inserted:,} inserted, {updated:,} updated", flush=True)
        return figures

    def compare(self) -> None:
        """The no-change re-sync through `ledger sync`, alternating the tree under test (--code,
        or this one) with --compare's, --rounds times each, in one run: the machine's load moves
        both alike, so the ratio of the two in a round is what counts."""
        trees = {"compare": Path(self.args.compare).resolve(), "tested": self.code}
        rounds: dict[str, list[Figures]] = {name: [] for name in trees}
        for n in range(self.args.rounds):
            for name in (("compare", "tested") if n % 2 == 0 else ("tested", "compare")):
                rounds[name].append(self.phase("cli", "resync", trees[name], label=name[:7]))
        print(f"A/B, {self.args.rounds} rounds alternated: tested {trees['tested']} against compare {trees['compare']}")
        for key, label in (("total", "CPU ms per member"), ("client", "client CPU ms per member"),
                           ("pg", "PostgreSQL CPU ms per member"), ("wall", "wall s"), ("calls", "calls per member")):
            values = {name: [f.measure(key) for f in figures] for name, figures in rounds.items()}
            ratios = [t / c for t, c in zip(values["tested"], values["compare"], strict=True) if c]
            print(
                f"  {label:<29} compare {' '.join(f'{v:7.2f}' for v in values['compare'])}   "
                f"tested {' '.join(f'{v:7.2f}' for v in values['tested'])}   "
                f"tested/compare per round {' '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})",
                flush=True,
            )

    def minimum(self, phase: str) -> int:
        """One token per member; one call per kind and date window (light histories fit in a
        page): usage and payments span initial_days in 31-day windows on the initial sync,
        one or two windows (the lookback) on the re-sync; refunds one page."""
        if phase == "initial":
            dated = -(-(self.args.initial_days + 1) // 31)
        else:
            dated = 1
        return len(self.corp_nums) * (1 + 2 * dated + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=60.0, help="server-side wait before every answer")
    parser.add_argument("--jobs", type=int, default=32, help="ledger sync --jobs")
    parser.add_argument("--max-concurrency", type=int, default=32, help="POPBILL_MAX_CONCURRENCY")
    parser.add_argument("--workers", type=int, default=3, help="Celery worker processes")
    parser.add_argument("--worker-threads", type=int, default=8, help="threads per Celery worker")
    parser.add_argument("--paths", default="cli,celery,fanout", help="any of cli, celery, fanout")
    parser.add_argument("--phases", default="initial,resync")
    parser.add_argument("--history-days", type=int, default=30, help="days of simulated history (light)")
    parser.add_argument("--usage-per-day", type=float, default=0.3)
    parser.add_argument("--initial-days", type=int, default=30, help="LEDGER_SYNC_INITIAL_DAYS")
    parser.add_argument(
        "--seed-ledger",
        choices=("sync", "clone"),
        default="sync",
        help="clone: members share --templates histories; one of each synced for real, copied to the rest",
    )
    parser.add_argument("--templates", type=int, default=50, help="distinct histories for --seed-ledger clone")
    parser.add_argument("--code", help="run ledger sync and the workers from this source tree (A/B against main)")
    parser.add_argument(
        "--compare", help="A/B: alternate the no-change re-sync through `ledger sync` with this source tree's"
    )
    parser.add_argument("--rounds", type=int, default=3, help="--compare: re-syncs of each tree, alternated")
    parser.add_argument("--token-cache", choices=("on", "off"), default="on",
                        help="POPBILL_TOKEN_CACHE: tokens kept on disk between the syncs' processes")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/ledger_scale_bench")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/5")
    args = parser.parse_args()
    if args.seed_ledger == "clone" and "initial" in args.phases.split(","):
        parser.error("--seed-ledger clone is for --phases resync (the initial phase would empty the copy)")

    bench = Bench(args)
    print(
        f"{args.members:,} members, latency {args.latency_ms:g} ms a call, --jobs {args.jobs}, "
        f"POPBILL_MAX_CONCURRENCY {args.max_concurrency}, Celery {args.workers} x {args.worker_threads} threads, "
        f"{psutil.cpu_count()} CPUs",
        flush=True,
    )
    bench.start_simulator()
    try:
        bench.setup_database()
        if args.seed_ledger == "clone":
            bench.clone_ledger()
        if args.compare:
            if args.seed_ledger != "clone":
                bench.phase("cli", "initial")
            bench.compare()
            return
        for path in args.paths.split(","):
            if path == "fanout":
                bench.fan_out()
                continue
            if path == "celery":
                bench.start_workers()
            try:
                for phase in args.phases.split(","):
                    bench.phase(path, phase)
            finally:
                if path == "celery":
                    bench.stop_workers()
    finally:
        bench.sim.terminate()
        bench.sim.wait(timeout=30)
        shutil.rmtree(bench.token_cache.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
