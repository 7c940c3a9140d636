"""Metrics scrape benchmark: what a real Prometheus's scrapes of `ledger metrics serve` cost.

    python bench/metrics_bench.py [--members 100000] [--snapshots 48] [--seconds 70] [--load 2]

Builds a database with N members, their three sync states, `snapshots` balance readings each
(a day of half-hourly checks), two alerts each, and some pending items, discrepancies and
notifications; starts `ledger metrics serve` and Debian's Prometheus scraping it every 2 s (as
Prometheus does: OpenMetrics, gzip; /metrics/members, the per-member series, every 10 s), first on a quiet machine, then with `--load` busy processes
beside it. Prints Prometheus's own scrape_duration_seconds (median, max), samples per scrape,
bytes per scrape (gzip and plain), the server's CPU and its PostgreSQL backends' CPU per scrape
(the background re-read of the per-member series included), and each query's plan.
Goals at 100,000 members: a scrape of /metrics under 0.3 s idle and under 1 s under load.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.db import migrate  # noqa: E402
from ledger.db.engine import make_engine  # noqa: E402
from ledger.metrics.ledger_state import QUERIES, ledger_tables  # noqa: E402
from ledger.metrics.member_series import READING_SQL  # noqa: E402
from ledger.secret import Secret  # noqa: E402
from ledger.settings import Settings  # noqa: E402

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # fmt: skip

FILL = [
    """INSERT INTO members (corp_num, name, low_balance_threshold)
       SELECT (1000000000 + g)::text, 'member ' || g, CASE WHEN g % 10 = 0 THEN 5000 END
       FROM generate_series(1, :members) g""",
    """INSERT INTO sync_states (member_id, kind, last_success_at)
       SELECT m.id, k, now() - (m.id % 90) * interval '1 hour'
       FROM members m CROSS JOIN unnest(ARRAY['payments', 'usage', 'refunds']) k""",
    """INSERT INTO balance_snapshots (subject, member_id, corp_num, balance, taken_at)
       SELECT 'member', m.id, m.corp_num, (m.id * 37 + s) % 100000 + 0.5, now() - s * interval '30 minutes'
       FROM members m CROSS JOIN generate_series(1, :snapshots) s""",
    """INSERT INTO balance_snapshots (subject, member_id, corp_num, balance, taken_at)
       SELECT 'partner', NULL, '1000000001', 500000, now() - s * interval '30 minutes' FROM generate_series(1, :snapshots) s""",
    """INSERT INTO alerts (subject, rule, member_id, state)
       SELECT m.corp_num, r, m.id, CASE WHEN m.id % 20 = 0 THEN 'firing' ELSE 'ok' END
       FROM members m CROSS JOIN unnest(ARRAY['low_balance', 'runway']) r""",
    """INSERT INTO tracked_items (member_id, kind, code, state, requested_at)
       SELECT m.id, CASE WHEN m.id % 2 = 0 THEN 'settle' ELSE 'refund' END, 'C' || m.id,
              CASE WHEN m.id % 3 = 0 THEN 'pending' ELSE 'done' END, now() - (m.id % 30) * interval '1 day'
       FROM members m WHERE m.id % 5 = 0""",
    """INSERT INTO discrepancies (member_id, check_name, period, fingerprint, description, evidence, status)
       SELECT m.id, 'balance_chain', 'all', 'f' || m.id, 'bench', '{}'::jsonb,
              CASE WHEN m.id % 2 = 0 THEN 'open' ELSE 'resolved' END
       FROM members m WHERE m.id % 20 = 0""",
    """INSERT INTO notifications (channel, kind, text, payload, status, created_at)
       SELECT (ARRAY['log', 'webhook', 'email'])[1 + g % 3], 'firing', 'bench', '{}'::jsonb,
              CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'sent' END, now() - g * interval '1 minute'
       FROM generate_series(1, 3000) g""",
    """INSERT INTO heartbeats (name, started_at, succeeded_at) VALUES ('beat', now(), NULL),
       ('task:ledger.sync.nightly', now() - interval '20 hours', now() - interval '19 hours')""",
]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends(engine, database: str) -> list[int]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                            {"d": database}).scalars().all()  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def start_prometheus(workdir: Path, target: str) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus is not installed: apt-get install -y prometheus")
    (workdir / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 2s, scrape_timeout: 2s}}
scrape_configs:
  - job_name: ledger
    static_configs: [{{targets: ["{target}"]}}]
  - job_name: ledger-members
    metrics_path: /metrics/members
    scrape_interval: 10s
    scrape_timeout: 10s
    static_configs: [{{targets: ["{target}"]}}]
""")
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(url + "/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(ready, 30, "Prometheus to start")
    return proc, url


def series(prometheus: str, expr: str, seconds: float) -> list[float]:
    answer = requests.get(prometheus + "/api/v1/query", params={"query": f"{expr}[{int(seconds)}s]"}, timeout=10).json()
    result = answer["data"]["result"]
    return [float(v) for _, v in result[0]["values"]] if result else []


def burn(stop_at: float) -> None:
    while time.time() < stop_at:
        sum(i * i for i in range(10_000))


def phase(name: str, prometheus: str, server_pid: int, engine, database: str, seconds: float, load: int) -> dict:
    burners = [multiprocessing.Process(target=burn, args=(time.time() + seconds + 1,)) for _ in range(load)]
    for b in burners:
        b.start()
    pids = backends(engine, database)
    cpu0, pg0 = cpu_seconds(server_pid), {p: cpu_seconds(p) for p in pids}
    time.sleep(seconds)
    cpu1 = cpu_seconds(server_pid)
    pg1 = {p: cpu_seconds(p) for p in backends(engine, database)}
    for b in burners:
        b.join()
    reading = series(prometheus, "ledger_metrics_member_reading_duration_seconds", seconds)
    jobs = {}
    for job in ("ledger", "ledger-members"):
        durations = series(prometheus, f'scrape_duration_seconds{{job="{job}"}}', seconds)
        samples = series(prometheus, f'scrape_samples_scraped{{job="{job}"}}', seconds)
        up = series(prometheus, f'up{{job="{job}"}}', seconds)
        jobs[job] = {"scrapes": len(durations), "failed": up.count(0.0),
                     "median": statistics.median(durations) if durations else float("nan"),
                     "max": max(durations) if durations else float("nan"), "samples": int(samples[-1]) if samples else 0}  # fmt: skip
    scrapes = max(1, sum(j["scrapes"] for j in jobs.values()))
    pg = sum(pg1[p] - pg0.get(p, 0.0) for p in pg1)
    return {"phase": name, "load": load, "jobs": jobs, "server_cpu": (cpu1 - cpu0) / scrapes, "pg_cpu": pg / scrapes,
            "reading": statistics.median(reading) if reading else float("nan"), "seconds": seconds,
            "server_cpu_total": cpu1 - cpu0, "pg_cpu_total": pg}  # fmt: skip


def plans(engine) -> None:
    print("\nquery plans (EXPLAIN ANALYZE, jit off):")
    with engine.connect() as conn:
        conn.execute(text("SET jit = off"))
        for name, sql in {**QUERIES, "members (per-member reading)": READING_SQL}.items():
            rows = conn.execute(text("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) " + sql), {"tables": ledger_tables(), "cutoff": None, "per_member": True, "per_kind": False}).scalars().all()
            scans = [r.strip() for r in rows if "Scan" in r]
            total = next((r for r in rows if r.startswith("Execution Time")), "")
            print(f"  {name:<30} {total:<28} {'; '.join(s.lstrip('-> ').split('  ')[0] for s in scans)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=70,
                        help="length of each phase (scrapes every 2 s; the per-member re-read is every 60 s)")  # fmt: skip
    parser.add_argument("--load", type=int, default=2, help="busy processes beside the loaded phase")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="a server to create a scratch database on (named with a random suffix, dropped after)")  # fmt: skip
    args = parser.parse_args()
    server = make_url(args.database_url).set(drivername="postgresql+psycopg")
    name = f"ledger_bench_metrics_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    procs: list[subprocess.Popen] = []
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(dataclasses.replace(Settings(), database_url=Secret(url)))
        migrate.upgrade(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            for sql in FILL:
                conn.execute(text(sql), {"members": args.members, "snapshots": args.snapshots})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        with engine.connect() as conn:
            snapshots = conn.execute(text("SELECT count(*) FROM balance_snapshots")).scalar()
        print(f"filled {args.members:,} members, {snapshots:,} balance snapshots in {time.perf_counter() - started:.1f} s")

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "POPBILL_"))}
        env.update(LEDGER_DATABASE_URL=url)
        metrics = subprocess.Popen([sys.executable, "-m", "ledger", "metrics", "serve", "--port", str(port)], env=env,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        procs.append(metrics)
        endpoint = f"http://127.0.0.1:{port}/metrics"

        def answering() -> bool:
            try:
                return requests.head(endpoint, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answering, 60, "ledger metrics serve")

        def read_in() -> bool:
            body = requests.get(endpoint, headers={"Accept": PROMETHEUS_ACCEPT}, timeout=120).content
            return b"ledger_metrics_member_reading_duration_seconds " in body

        wait_until(read_in, 300, "the first per-member reading")
        first = requests.get(endpoint, headers={"Accept": PROMETHEUS_ACCEPT}, timeout=120)
        took = next(line for line in first.text.splitlines()
                    if line.startswith("ledger_metrics_member_reading_duration_seconds "))  # fmt: skip
        print(f"the per-member reading (in the background, at start and every LEDGER_METRICS_REFRESH): "
              f"{float(took.split()[1]):.2f} s wall; server CPU since start {cpu_seconds(metrics.pid):.2f} s")  # fmt: skip
        for path in ("", "/members"):
            plain = requests.get(endpoint + path, headers={"Accept": PROMETHEUS_ACCEPT}, timeout=120).content
            raw = requests.get(endpoint + path, headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
                               stream=True, timeout=120).raw.read(decode_content=False)  # fmt: skip
            print(f"bytes per scrape of /metrics{path}: {len(raw):,} gzip ({len(gzip.decompress(raw)):,} inflated), "
                  f"{len(plain):,} plain")  # fmt: skip

        with tempfile.TemporaryDirectory(prefix="ledger-bench-prom-") as workdir:
            prom, prometheus = start_prometheus(Path(workdir), f"127.0.0.1:{port}")
            procs.append(prom)
            wait_until(lambda: series(prometheus, 'scrape_duration_seconds{job="ledger-members"}', 20), 60, "the first scrapes")
            results = [phase("idle", prometheus, metrics.pid, engine, name, args.seconds, 0)]
            if args.load:
                results.append(phase("under load", prometheus, metrics.pid, engine, name, args.seconds, args.load))
        print(f"\nPrometheus scraping every 2 s, {args.members:,} members (load average now "
              f"{os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")  # fmt: skip
        print("scrape_duration_seconds as Prometheus measured it (the HTTP answer and Prometheus taking the samples in)")
        print(f"{'phase':<11} {'busy':>4} {'job':<15} {'scrapes':>7} {'failed':>6} {'median s':>9} {'max s':>7} {'samples':>8}")
        for r in results:
            for job, j in r["jobs"].items():
                print(f"{r['phase']:<11} {r['load']:>4} {job:<15} {j['scrapes']:>7} {j['failed']:>6} {j['median']:>9.3f} "
                      f"{j['max']:>7.3f} {j['samples']:>8,}")  # fmt: skip
        print("\nCPU over each phase (the per-member reading every 60 s included), and that reading's own wall time")
        print(f"{'phase':<11} {'seconds':>7} {'server CPU':>10} {'PG CPU':>7} {'per scrape (server+PG)':>23} {'reading s':>9}")
        for r in results:
            print(f"{r['phase']:<11} {r['seconds']:>7.0f} {r['server_cpu_total']:>9.2f}s {r['pg_cpu_total']:>6.2f}s "
                  f"{r['server_cpu'] + r['pg_cpu']:>22.3f}s {r['reading']:>9.2f}")  # fmt: skip
        goals = {"idle": 0.3, "under load": 1.0}
        for r in results:
            j = r["jobs"]["ledger"]
            verdict = "met" if j["max"] < goals[r["phase"]] else "NOT met"
            print(f"goal {r['phase']}: every /metrics scrape under {goals[r['phase']]} s -> {verdict} (max {j['max']:.3f} s); "
                  f"/metrics/members max {r['jobs']['ledger-members']['max']:.3f} s")  # fmt: skip
        plans(engine)
        engine.dispose()
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
