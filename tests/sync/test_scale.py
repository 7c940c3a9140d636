"""Scale-out behaviour: several worker processes and a CLI sync racing over many members;
the client's bound on calls in flight and its shared 429 backoff."""

from __future__ import annotations

import subprocess
import sys
import threading

from sqlalchemy import text

from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from tests.conftest import client_settings, small_config
from tests.scheduling.test_celery import app_for, broker, process_env, processes  # noqa: F401 - fixtures
from tests.sync.helpers import assert_ledger_equals_truth
from tests.waiting import wait_for

MEMBERS = [f"{1100000000 + 7919 * n:010d}" for n in range(200)]


def test_three_workers_and_a_cli_racing_over_200_members(clean_engine, broker, processes, tmp_path):  # noqa: F811
    from sqlalchemy.orm import Session

    with Session(clean_engine) as session:
        for corp in MEMBERS:
            add_member(session, MemberInput(corp))
        session.commit()
    with Simulator(small_config(history_days=20, usage_per_day=2)) as sim:
        # A day-long slot: the two fan-outs below fall in one, as two beats firing at once would.
        env = process_env(
            sim, tmp_path, LEDGER_SCHEDULE_SYNC="86400s", LEDGER_SYNC_MEMBERS_PER_TASK="10",
            LEDGER_BROKER_VISIBILITY_TIMEOUT="600",  # as deployed: no redelivery of a task still running
        )  # fmt: skip
        for n in range(3):
            processes.start(["worker", "-c", "3"], env, tmp_path, f"worker{n}")
        app = app_for(env)
        app.send_task("ledger.sync.nightly")
        app.send_task("ledger.sync.nightly")  # beat fired twice: the second fan-out claims nothing
        cli = subprocess.run(
            [sys.executable, "-m", "ledger", "sync", "--jobs", "8", "--json"],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr[-2000:]

        def finished_runs() -> int:
            with clean_engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM sync_runs WHERE status <> 'running'")).scalar()

        # Two triggers (the CLI and one fan-out), so two runs for every member and kind.
        wait_for(lambda: finished_runs() >= len(MEMBERS) * 3 * 2, timeout=180, what="both triggers' runs")
        assert_ledger_equals_truth(clean_engine, sim, MEMBERS)
    with clean_engine.connect() as conn:
        per_member_kind = conn.execute(
            text(
                "SELECT member_id, kind, count(*) AS runs, count(*) FILTER (WHERE status = 'succeeded') AS succeeded, "
                "count(*) FILTER (WHERE status = 'skipped') AS skipped, "
                "count(*) FILTER (WHERE status NOT IN ('succeeded', 'skipped')) AS other "
                "FROM sync_runs GROUP BY member_id, kind"
            )
        ).all()
        fan_outs = conn.execute(text("SELECT count(*) FROM schedule_claims WHERE job = 'sync'")).scalar()
        duplicates = conn.execute(
            text("SELECT count(*) - count(DISTINCT (member_id, row_key, occurrence)) FROM usages")
        ).scalar()
    assert fan_outs == 1
    assert duplicates == 0
    assert len(per_member_kind) == len(MEMBERS) * 3
    # One run per trigger: succeeded, or turned away while the other trigger's run held the
    # lock (then that one succeeded); never a second run within a trigger, never a failure.
    for row in per_member_kind:
        assert (row.runs, row.other) == (2, 0), row
        assert row.succeeded >= 1 and row.skipped == 2 - row.succeeded, row


def hammer(client: PopbillClient, threads: int, calls: int) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(calls):
                client.get_balance("1234567890")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []


def test_a_429_pauses_every_thread_for_its_retry_after():
    with Simulator(small_config()) as sim:
        settings = client_settings(sim, max_concurrency=4, retry_attempts=3)
        with PopbillClient(settings) as client:
            client.get_balance("1234567890")  # the token, before the clock matters
            sim.inject("rate_limit", path="/", skip=40, count=1, retry_after=1.5)
            hammer(client, threads=4, calls=40)
        log = sim.requests()
    limited = [r for r in log if r.status == 429]
    assert len(limited) == 1
    told_at = limited[0].received_at
    # Calls already past the gate may still arrive just after the 429; then nothing until
    # the Retry-After has passed, from any of the four threads.
    during = [r for r in log if told_at + 0.3 < r.received_at < told_at + 1.45]
    after = [r for r in log if r.received_at >= told_at + 1.45]
    assert during == []
    assert len(after) > 0 and sum(r.status == 200 and not r.path.endswith("/Token") for r in log) == 1 + 4 * 40


def test_calls_in_flight_never_exceed_max_concurrency():
    with Simulator(small_config()) as sim:
        settings = client_settings(sim, max_concurrency=2)
        with PopbillClient(settings) as client:
            client.get_balance("1234567890")
            sim.inject("latency", path="/", rate=1.0, seconds=0.1)
            hammer(client, threads=6, calls=4)
        arrivals = sorted(r.received_at for r in sim.requests() if r.fault == "latency")
    assert len(arrivals) == 6 * 4
    # Each of the two slots is held at least 0.1 s per call, so no window shorter than that
    # sees a third call arrive (six unbounded threads would put six in one window).
    assert max(sum(1 for b in arrivals if a <= b < a + 0.09) for a in arrivals) <= 2


def test_a_sync_after_the_lock_connection_was_cut_still_runs(clean_engine):
    """The process keeps one connection for the sync locks; a server restart cuts it, and the
    next sync opens a new one instead of failing."""
    from sqlalchemy.orm import Session

    corp = MEMBERS[0]
    with Session(clean_engine) as session:
        add_member(session, MemberInput(corp))
        session.commit()
    with Simulator(small_config(history_days=10)) as sim, PopbillClient(client_settings(sim)) as client:
        from ledger.sync.service import sync_member

        assert sync_member(clean_engine, client, corp, "usage", today=sim.world.today()).status == "succeeded"
        with clean_engine.connect() as conn:
            cut = conn.execute(
                text(
                    "WITH others AS MATERIALIZED (SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()) "
                    "SELECT array_agg(pid) FROM others WHERE pg_terminate_backend(pid)"
                )
            ).scalar()
            assert cut

            # pg_terminate_backend only signals: as after a restart, the next sync starts once
            # the cut backends are gone (their sockets closed, which the pool sees at checkout).
            def gone() -> bool:
                conn.commit()
                return not conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:cut)"), {"cut": cut}
                ).scalar()

            wait_for(gone, what="the cut backends to exit")
        again = sync_member(clean_engine, client, corp, "usage", today=sim.world.today())
        assert again.status == "succeeded", again.error
        assert_ledger_equals_truth(clean_engine, sim, [corp], kinds=("usage",))
