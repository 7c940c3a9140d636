"""The whole night, end to end, for many members on one box.

    python bench/night_bench.py [--members 100000] [--path celery|cli] [--latency-ms 60]
                                [--workers 3] [--worker-threads 8] [--jobs 32]

One night is: the sync (all three kinds), the balance check (GetBalance for every member,
with the low-balance and runway alerts), the pending poll, the reconciliation and one scrape
of the metrics endpoint. `--path celery` runs each as the beat would trigger it, through real
Celery worker processes (`ledger.sync.nightly`, `ledger.alerts.check_balances`,
`ledger.pending.poll`, `ledger.reconcile.nightly`); `--path cli` through the commands an
operator runs (`ledger sync`, `ledger balances`, `ledger pending poll`, `ledger reconcile`).
The scrape starts `ledger metrics serve` and GETs /metrics until it carries its first reading
of the members (earlier scrapes answer at once without it), then /metrics/members once, either
way. The phases run one after another, and for each the bench prints:

- wall time;
- CPU seconds: the client processes (the CLI command, or the worker processes) plus the
  PostgreSQL backends serving them (read from /proc while they run);
- calls answered by the simulated Popbill (tokens included);
- the peak RSS of the largest client process;
- the most PostgreSQL connections open at once;
- SQL statements and commits of the client processes (counted at psycopg's cursor by
  bench/counting/sitecustomize.py, which the bench puts on the processes' PYTHONPATH);
- per member: CPU milliseconds (client + PostgreSQL) and statements;
and a total, and every table's rows and bytes before and after the night.

`--phases` runs only some of the phases (`--phases balances` for the balance check alone).
`--compare TREE` then runs the balance check `--rounds` more times from each tree, this one
and TREE in turn (the first of a pair alternates), each through fresh workers (or a fresh
command), and prints the ratios: an A/B of the same night's state in one session.

The set-up is not measured: the simulator (waiting `--latency-ms` before every answer) gets
`--members` members sharing `--templates` histories; the ledger is seeded as the night
before left it by syncing one member of each history for real and copying its ledger to the
others (bench/scale_bench.py `--seed-ledger clone`: 100,000 members in minutes); then the
simulated clock moves `--advance-days` on (new rows to sync), `--pending-share` of the
members get a deposit request that is tracked (the poll's work), and `--low-share` get a
balance under the alert threshold (the alerts' work).

The Celery path needs RabbitMQ on this machine (the default broker): the bench makes a vhost
of its own with rabbitmqctl and deletes it afterwards, or takes `--broker-url`.
PostgreSQL must run on this machine (backend CPU is read from /proc/<pid>/stat).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import psutil
import requests
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale_bench import BackendWatch, Bench, Sampler, tree_cpu, tree_rss  # noqa: E402 - the sibling benchmark's helpers

KINDS = 3
PHASES = ("sync", "balances", "poll", "reconcile", "scrape")
COUNTING = ROOT / "bench" / "counting"  # its sitecustomize counts each process's statements


class RssWatch(Sampler):
    """The peak RSS of each of a set of processes (their children counted in), sampled."""

    def __init__(self, pids, interval: float = 0.2) -> None:
        super().__init__(interval)
        self.pids = list(pids)
        self.peaks: dict[int, int] = {}

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for pid in self.pids:
            try:
                rss = tree_rss(pid)
            except psutil.Error:
                continue
            self.peaks[pid] = max(self.peaks.get(pid, 0), rss)

    @property
    def peak_mb(self) -> float:
        return max(self.peaks.values(), default=0) / 2**20


def cpu_of(pids) -> float:
    """The CPU seconds of these processes and their children; one already gone counts nothing."""
    total = 0.0
    for pid in pids:
        try:
            total += tree_cpu(pid)
        except psutil.Error:
            pass
    return total


@dataclasses.dataclass
class Phase:
    name: str
    wall: float
    client_cpu: float
    pg_cpu: float
    calls: int
    peak_rss_mb: float
    pg_connections: int
    statements: int
    commits: int
    members: int
    note: str = ""

    @property
    def cpu(self) -> float:
        return self.client_cpu + self.pg_cpu

    def line(self) -> str:
        per = 1 / max(self.members, 1)
        return (
            f"{self.name:<15} {self.wall:9.1f} {self.cpu:10.1f} ({self.client_cpu:8.1f} + {self.pg_cpu:7.1f}) "
            f"{self.calls:10,} {self.peak_rss_mb:7.0f} {self.pg_connections:6} {self.statements:10,} "
            f"{self.commits:9,} {1000 * self.cpu * per:9.2f} ({1000 * self.client_cpu * per:6.2f} + "
            f"{1000 * self.pg_cpu * per:5.2f}) {self.statements * per:8.2f}  {self.note}"
        )


HEADER = (
    f"{'phase':<15} {'wall s':>9} {'CPU s':>10} ({'client':>8} + {'PG':>7}) {'calls':>10} {'RSS MB':>7} "
    f"{'PG con':>6} {'stmts':>10} {'commits':>9} {'ms/member':>9} ({'client':>6} + {'PG':>5}) {'stmts/m':>8}\n"
    "(RSS: the largest process; PG con: most open at once; ms/member: CPU per member; stmts/m: statements per member)"
)


class Night(Bench):
    def __init__(self, args) -> None:
        super().__init__(args)
        self.broker_url = args.broker_url or "amqp://guest:guest@127.0.0.1:5672//"  # replaced by make_broker
        self.vhost = None
        self.counts_dir = tempfile.mkdtemp(prefix="night_bench_counts_")
        self.workers = []

    # -- set-up (not measured) ---------------------------------------------------------------

    def env(self, code: Path | None = None) -> dict[str, str]:
        base = super().env(code)
        return {
            **base,
            "PYTHONPATH": f"{base['PYTHONPATH']}{os.pathsep}{COUNTING}",
            "NIGHT_BENCH_COUNTS": self.counts_dir,
            "LEDGER_BROKER_URL": self.broker_url,
            # Popbill's clock, not this machine's: the simulated day moves on (--advance-days).
            "POPBILL_USE_LOCAL_TIME": "false",
            "LEDGER_ALERT_THRESHOLD": str(self.args.threshold),
            "LEDGER_SYNC_JOBS_PER_TASK": str(self.args.jobs_per_task),
            # The night's tasks one after another, each long: no redelivery while one runs.
            "LEDGER_BROKER_VISIBILITY_TIMEOUT": "86400",
            "LEDGER_TASK_TIME_LIMIT": "86400",
        }

    def make_broker(self) -> None:
        if self.args.broker_url:
            return
        if shutil.which("rabbitmqctl") is None:
            raise SystemExit("--path celery needs rabbitmqctl (a vhost of the bench's own) or --broker-url")
        self.vhost = f"night_bench_{os.getpid()}"
        for command in (["add_vhost", self.vhost], ["set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*"]):
            subprocess.run(["rabbitmqctl", "-q", *command], check=True, capture_output=True)
        self.broker_url = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"

    def drop_broker(self) -> None:
        if self.vhost:
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], capture_output=True)

    def seed_ledger(self) -> None:
        if self.args.seed_ledger == "clone":
            self.clone_ledger()
        else:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "ledger", "sync", "--jobs", str(self.args.jobs), "--json"],
                                  env=self.env(), cwd=self.code, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"the seeding sync failed: {done.stderr[-2000:]}")
            print(f"ledger seeded by a real initial sync in {time.perf_counter() - started:.1f} s", flush=True)

    def prepare_night(self) -> None:
        """The day that passed: new rows, deposits to follow, balances under the threshold."""
        a = self.args
        started = time.perf_counter()
        if a.advance_days:
            requests.post(f"{self.sim_url}/_sim/clock", json={"advance_days": a.advance_days}, timeout=600)
        low = self.corp_nums[:: max(1, round(1 / a.low_share))] if a.low_share else []
        for corp in low:
            requests.post(f"{self.sim_url}/_sim/members/{corp}/balance",
                          json={"balance": str(a.threshold / 2)}, timeout=60)  # fmt: skip
        pending = self.corp_nums[1 :: max(1, round(1 / a.pending_share))] if a.pending_share else []
        from ledger.pending.service import track_code
        from ledger.popbill import PaymentForm, PopbillClient
        from ledger.popbill.errors import TransportError
        from ledger.settings import Settings

        settings = Settings.from_env({**self.env(), "POPBILL_TOKEN_CACHE": "off"})
        form = PaymentForm("담당자", "night@bench.kr", "01000000000", "입금자", Decimal("33000"))
        def request(corp: str) -> str:
            for attempt in range(5):  # a burst of new connections can overflow the simulator's listen queue
                try:
                    return client.payment_request(corp, form).settle_code
                except TransportError:
                    if attempt == 4:
                        raise
                    time.sleep(0.5)
            raise AssertionError("unreachable")

        with PopbillClient(settings) as client, concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(request, pending))
        from sqlalchemy.orm import Session

        with Session(self.engine) as session:
            for corp, code in zip(pending, codes, strict=True):
                track_code(session, corp, "settle", code)
            session.commit()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        print(
            f"the day before: clock +{a.advance_days} day(s), {len(low):,} balances set under the threshold of "
            f"{a.threshold}, {len(pending):,} deposit requests tracked ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )

    def table_sizes(self) -> dict[str, tuple[int, int]]:
        with self.engine.connect() as conn:
            tables = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
            ).scalars().all()  # fmt: skip
            return {
                t: (conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar(),
                    conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": t}).scalar())
                for t in tables
            }  # fmt: skip

    # -- phases ------------------------------------------------------------------------------

    def statement_counts(self) -> tuple[int, int]:
        """Statements and commits the client processes made so far (each writes its own file)."""
        statements = commits = 0
        for path in Path(self.counts_dir).iterdir():
            if path.suffix == ".tmp":
                continue
            made, committed = path.read_text().split()
            statements, commits = statements + int(made), commits + int(committed)
        return statements, commits

    def measure(self, name: str, run, client_pids) -> Phase:
        """run() does the phase and returns (client CPU seconds or None to read it from
        client_pids, the processes to watch for RSS, a note)."""
        calls_before, _ = self.counts()
        statements_before, commits_before = self.statement_counts()
        pids = client_pids()
        cpu_before = cpu_of(pids)
        started = time.perf_counter()
        with BackendWatch(self.engine, self.db_name) as pg, RssWatch(pids) as rss:
            client_cpu, note = run(rss)
        wall = time.perf_counter() - started
        if client_cpu is None:
            client_cpu = cpu_of(pids) - cpu_before
        calls, _ = self.counts()
        time.sleep(0.5)  # a running process writes its counts every 0.2 s
        statements, commits = self.statement_counts()
        phase = Phase(name, wall, client_cpu, pg.cpu_seconds, calls - calls_before, rss.peak_mb, pg.peak,
                      statements - statements_before, commits - commits_before, len(self.corp_nums), note)  # fmt: skip
        print(phase.line(), flush=True)
        return phase

    def cli(self, name: str, *command: str, ok=(0,), code: Path | None = None) -> Phase:
        code = code or self.code

        def run(rss: RssWatch):
            proc = subprocess.Popen([sys.executable, "-m", "ledger", *command], env=self.env(code), cwd=code,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
            rss.pids.append(proc.pid)
            _, err = proc.communicate()
            if proc.returncode not in ok:
                raise SystemExit(f"ledger {' '.join(command)} failed ({proc.returncode}): {err[-2000:]}")
            return self._last_child_cpu(), f"exit {proc.returncode}"

        return self.measure(name, run, lambda: [])

    def celery(self, name: str, task: str, done=None) -> Phase:
        def run(rss: RssWatch):
            self.app.send_task(task, kwargs={"from_beat": False})
            self.wait_idle(done)
            return None, ""

        return self.measure(name, run, lambda: [w.pid for w in self.workers])

    def wait_idle(self, done=None) -> None:
        """Until the phase's work is done: its condition holds (if any), no task is queued and
        no worker runs one, twice in a row (a task may queue others before it ends)."""
        idle_rounds = 0
        while idle_rounds < 2:
            time.sleep(0.5)
            if any(w.poll() is not None for w in self.workers):
                raise SystemExit("a worker died")
            if done is not None and not done():
                idle_rounds = 0
                continue
            with self.app.connection_for_read() as conn:
                queued = conn.default_channel.queue_declare("celery", passive=True).message_count
            active = self.app.control.inspect(timeout=1.0).active() or {}
            busy = queued or any(active.values()) or len(active) < len(self.workers)
            idle_rounds = 0 if busy else idle_rounds + 1

    def start_workers(self, code: Path | None = None) -> None:
        a = self.args
        code = code or self.code
        self.workers = [
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers", "worker", "-P", "threads", "-c", str(a.worker_threads),
                 "-n", f"night{n}-{os.getpid()}@%h", "-l", "WARNING", "--without-gossip", "--without-mingle"],
                env=self.env(code), cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for n in range(a.workers)
        ]
        from celery import Celery

        self.app = Celery("night_bench", broker=self.broker_url)
        deadline = time.monotonic() + 120
        while len(self.app.control.inspect(timeout=1.0).ping() or {}) < a.workers:
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not answer a ping within 2 minutes")
            time.sleep(0.5)

    def stop_workers(self) -> None:
        for w in self.workers:
            w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.kill()

    def finished_runs_since(self, before: int) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM sync_runs WHERE id > :b AND status <> 'running'"), {"b": before}
            ).scalar()

    def scrape(self) -> Phase:
        """`ledger metrics serve` started inside the phase, scraped as Prometheus would: /metrics
        until it carries the figures of its first reading of the members (the first scrapes answer
        at once without them), then /metrics/members (the per-member job) once."""
        port = free_port()

        def get(path: str) -> tuple[requests.Response, float]:
            started = time.perf_counter()
            answer = requests.get(f"http://127.0.0.1:{port}{path}", timeout=3600, headers={"Accept-Encoding": "gzip"})
            answer.raise_for_status()
            return answer, time.perf_counter() - started

        def series(answer: requests.Response) -> int:
            return sum(1 for line in answer.text.splitlines() if line and not line.startswith("#"))

        def run(rss: RssWatch):
            server = subprocess.Popen([sys.executable, "-m", "ledger", "metrics", "serve", "--port", str(port)],
                                      env=self.env(), cwd=self.code, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)  # fmt: skip
            rss.pids.append(server.pid)
            try:
                deadline = time.monotonic() + 3600
                while True:
                    with socket.socket() as s:
                        if s.connect_ex(("127.0.0.1", port)) == 0:
                            break
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("ledger metrics serve did not start")
                    time.sleep(0.2)
                first, first_s = get("/metrics")
                scrapes, answer, took = 1, first, first_s
                while "ledger_members{" not in answer.text:  # the first reading of the members still running
                    if time.monotonic() > deadline:
                        raise SystemExit("ledger metrics serve never read the members")
                    time.sleep(1)  # Prometheus's scrapes come every few seconds; this is gentler
                    answer, took = get("/metrics")
                    scrapes += 1
                members, members_s = get("/metrics/members")
                rss.sample()
                cpu = tree_cpu(server.pid)
                note = (f"/metrics {series(answer):,} series, {len(answer.content) / 2**10:.0f} KB, in {took:.2f} s "
                        f"(first of {scrapes} {first_s:.2f} s); /metrics/members {series(members):,} series "
                        f"{len(members.content) / 2**20:.1f} MB ({int(members.headers['Content-Length']) / 2**20:.1f} MB "
                        f"gzipped) in {members_s:.2f} s")  # fmt: skip
                return cpu, note
            finally:
                server.terminate()
                server.wait(timeout=30)

        return self.measure("metrics scrape", run, lambda: [])

    def balance_check(self, name: str = "balance check", code: Path | None = None) -> Phase:
        if self.args.path == "cli":
            return self.cli(name, "balances", "--json", code=code)
        with self.engine.connect() as conn:
            snapshots = conn.execute(text("SELECT count(*) FROM balance_snapshots")).scalar()

        def done() -> bool:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM balance_snapshots")).scalar() > snapshots

        return self.celery(name, "ledger.alerts.check_balances", done)

    def night(self) -> list[Phase]:
        n = len(self.corp_nums)
        wanted = set(self.args.phases)
        self._last_child_cpu()  # the set-up's children are not the night's
        print(HEADER, flush=True)
        phases = []
        if self.args.path == "cli":
            if "sync" in wanted:
                phases.append(self.cli("sync", "sync", "--jobs", str(self.args.jobs), "--json"))
            if "balances" in wanted:
                phases.append(self.balance_check())
            if "poll" in wanted:
                phases.append(self.cli("pending poll", "pending", "poll"))
            if "reconcile" in wanted:
                phases.append(self.cli("reconcile", "reconcile", "--json", ok=(0, 3)))
        elif wanted - {"scrape"}:
            self.start_workers()
            try:
                if "sync" in wanted:
                    with self.engine.connect() as conn:
                        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM sync_runs")).scalar()
                    phases.append(self.celery("sync", "ledger.sync.nightly",
                                              lambda: self.finished_runs_since(before) >= n * KINDS))  # fmt: skip
                if "balances" in wanted:
                    phases.append(self.balance_check())
                if "poll" in wanted:
                    phases.append(self.celery("pending poll", "ledger.pending.poll"))
                if "reconcile" in wanted:
                    phases.append(self.celery("reconcile", "ledger.reconcile.nightly"))
            finally:
                self.stop_workers()
        if "scrape" in wanted:
            phases.append(self.scrape())
        total = Phase("total", *(sum(getattr(p, f) for p in phases) for f in ("wall", "client_cpu", "pg_cpu", "calls")),
                      max(p.peak_rss_mb for p in phases), max(p.pg_connections for p in phases),
                      *(sum(getattr(p, f) for p in phases) for f in ("statements", "commits")), n)  # fmt: skip
        print(total.line(), flush=True)
        verdict = "within" if total.wall <= 3600 else "over"
        print(f"the night: {total.wall / 60:.1f} minutes for {n:,} members ({verdict} the goal of 60 at 100,000); "
              f"largest process {total.peak_rss_mb:.0f} MB (goal: under 400)", flush=True)  # fmt: skip
        return phases

    def compare_balances(self) -> None:
        """The balance check again, from this tree and from --compare in turn (which goes first
        alternates), each through its own fresh workers or command; then the medians and ratios."""
        trees = {"compare": Path(self.args.compare).resolve(), "tested": self.code}
        print(f"\nthe balance check, {self.args.rounds} rounds alternating tested ({self.code}) and compare "
              f"({trees['compare']}):\n{HEADER}", flush=True)  # fmt: skip
        figures: dict[str, list[Phase]] = {label: [] for label in trees}
        for round_no in range(1, self.args.rounds + 1):
            order = ("compare", "tested") if round_no % 2 else ("tested", "compare")
            for label in order:
                name = f"{round_no} {label}"
                if self.args.path == "cli":
                    figures[label].append(self.balance_check(name, trees[label]))
                    continue
                self.start_workers(trees[label])
                try:
                    figures[label].append(self.balance_check(name))
                finally:
                    self.stop_workers()
        median = {label: {f: statistics.median(getattr(p, f) for p in runs)
                          for f in ("wall", "cpu", "client_cpu", "pg_cpu", "statements")}
                  for label, runs in figures.items()}  # fmt: skip
        n = len(self.corp_nums)
        for label, m in median.items():
            print(f"median {label:<8} wall {m['wall']:7.1f} s  CPU/member {1000 * m['cpu'] / n:6.2f} ms "
                  f"(client {1000 * m['client_cpu'] / n:.2f} + PG {1000 * m['pg_cpu'] / n:.2f})  "
                  f"statements/member {m['statements'] / n:.3f}", flush=True)  # fmt: skip
        a, b = median["compare"], median["tested"]
        print("compare / tested: " + ", ".join(f"{f} {a[f] / b[f]:.1f}x" if b[f] else f"{f} -"
                                               for f in ("wall", "cpu", "client_cpu", "pg_cpu", "statements")))

    def outcome(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM sync_runs WHERE started_at > now() - interval '1 day' "
                    "AND status = 'failed') AS failed_runs, "
                    "(SELECT count(*) FROM alerts WHERE state = 'firing') AS firing, "
                    "(SELECT count(*) FROM tracked_items WHERE state <> 'pending') AS resolved, "
                    "(SELECT count(*) FROM discrepancies WHERE status = 'open') AS open_discrepancies"
                )
            ).one()
        print(
            f"outcome: {rows.failed_runs:,} failed sync runs, {rows.firing:,} alerts firing, {rows.resolved:,} tracked "
            f"items resolved, {rows.open_discrepancies:,} open discrepancies",
            flush=True,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def print_sizes(before: dict, after: dict) -> None:
    print(f"{'table':<28} {'rows before':>12} {'rows after':>12} {'MB before':>10} {'MB after':>10}")
    for table in sorted(set(before) | set(after)):
        rb, bb = before.get(table, (0, 0))
        ra, ba = after.get(table, (0, 0))
        if rb or ra:
            print(f"{table:<28} {rb:>12,} {ra:>12,} {bb / 2**20:>10.1f} {ba / 2**20:>10.1f}")
    print(f"{'all tables':<28} {sum(r for r, _ in before.values()):>12,} {sum(r for r, _ in after.values()):>12,} "
          f"{sum(b for _, b in before.values()) / 2**20:>10.1f} {sum(b for _, b in after.values()) / 2**20:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--path", choices=("celery", "cli"), default="celery")
    parser.add_argument("--latency-ms", type=float, default=60.0, help="server-side wait before every answer")
    parser.add_argument("--workers", type=int, default=3, help="Celery worker processes")
    parser.add_argument("--worker-threads", type=int, default=8, help="threads per Celery worker")
    parser.add_argument("--jobs-per-task", type=int, default=8, help="LEDGER_SYNC_JOBS_PER_TASK")
    parser.add_argument("--jobs", type=int, default=32, help="ledger sync --jobs (the CLI path)")
    parser.add_argument("--max-concurrency", type=int, default=32, help="POPBILL_MAX_CONCURRENCY per process")
    parser.add_argument("--seed-ledger", choices=("clone", "sync"), default="clone")
    parser.add_argument("--templates", type=int, default=50, help="distinct histories the members share")
    parser.add_argument("--history-days", type=int, default=30, help="days of simulated history")
    parser.add_argument("--usage-per-day", type=float, default=0.3)
    parser.add_argument("--initial-days", type=int, default=30, help="LEDGER_SYNC_INITIAL_DAYS")
    parser.add_argument("--advance-days", type=int, default=1, help="the simulated day that passed before the night")
    parser.add_argument("--pending-share", type=float, default=0.01, help="members with a deposit request tracked")
    parser.add_argument("--low-share", type=float, default=0.03, help="members whose balance falls under the threshold")
    parser.add_argument("--threshold", type=Decimal, default=Decimal("10000"), help="LEDGER_ALERT_THRESHOLD")
    parser.add_argument("--token-cache", choices=("on", "off"), default="on",
                        help="POPBILL_TOKEN_CACHE: tokens kept on disk between the night's processes")  # fmt: skip
    parser.add_argument("--code", help="run the night from this source tree")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES), help="the phases to run")
    parser.add_argument("--compare", help="then the balance check alternating this tree and COMPARE (A/B)")
    parser.add_argument("--rounds", type=int, default=2, help="--compare: balance checks from each tree")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/ledger_night_bench")
    parser.add_argument("--broker-url", help="default: a RabbitMQ vhost of the bench's own (rabbitmqctl)")
    args = parser.parse_args()

    night = Night(args)
    print(
        f"{args.members:,} members, path {args.path}, latency {args.latency_ms:g} ms a call, "
        f"POPBILL_MAX_CONCURRENCY {args.max_concurrency}, "
        + (f"Celery {args.workers} x {args.worker_threads} threads, {args.jobs_per_task} jobs a task, "
           if args.path == "celery" else f"ledger sync --jobs {args.jobs}, ")
        + f"{psutil.cpu_count()} CPUs",
        flush=True,
    )  # fmt: skip
    if args.path == "celery":
        night.make_broker()
    night.start_simulator()
    try:
        night.setup_database()
        night.seed_ledger()
        night.prepare_night()
        before = night.table_sizes()
        night.night()
        if args.compare:
            night.compare_balances()
        night.outcome()
        print_sizes(before, night.table_sizes())
    finally:
        night.sim.terminate()
        night.sim.wait(timeout=30)
        shutil.rmtree(night.token_cache.parent, ignore_errors=True)
        shutil.rmtree(night.counts_dir, ignore_errors=True)
        night.drop_broker()


if __name__ == "__main__":
    main()
