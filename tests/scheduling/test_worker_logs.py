"""What an operator sees of a failed member: in JSON mode every line the worker and `ledger sync`
write is one JSON object, a failure is one line naming member, kind, run id, error class and
Popbill's code; and the group task ends FAILURE (what Flower shows) listing the failed member."""

from __future__ import annotations

import json
import signal
import threading

from sqlalchemy import text

from ledger.simulator.errors import MEMBER_CLOSED
from tests.scheduling.test_celery import MEMBERS, app_for, broker, ledger_db, process_env, processes, sim  # noqa: F401
from tests.test_cli_ledger import ledger
from tests.waiting import wait_for

GOOD, BAD = MEMBERS


def json_lines(output: str) -> list[dict]:
    """Every line, parsed: a line that is not a JSON object fails the test with the line shown."""
    parsed = []
    for line in output.splitlines():
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"not JSON: {line!r}") from None
            assert isinstance(record, dict), line
            parsed.append(record)
    return parsed


def failed_run_id(engine, corp_num: str) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT r.id FROM sync_runs r JOIN members m ON m.id = r.member_id "
                                     "WHERE m.corp_num = :c AND r.status = 'failed'"), {"c": corp_num}).scalars())  # fmt: skip


def test_group_task_with_a_failed_member_ends_failed_naming_it_and_the_worker_writes_only_json(
    ledger_db, sim, tmp_path,  # noqa: F811
    broker,  # noqa: F811
    processes,  # noqa: F811
):  # fmt: skip
    sim.world.close_member(BAD)  # Popbill refuses it: not worth a retry
    env = process_env(sim, tmp_path, LEDGER_LOG_FORMAT="json")
    app = app_for(env)
    events: dict[str, dict] = {}
    listening = threading.Event()

    def listen() -> None:
        with app.connection() as conn:
            receiver = app.events.Receiver(conn, handlers={
                "task-failed": lambda e: events.setdefault("failed", e),
                "task-succeeded": lambda e: events.setdefault("succeeded", e),
            })  # fmt: skip
            listening.set()
            for _ in receiver.itercapture(limit=None, timeout=None, wakeup=False):
                if "failed" in events or "succeeded" in events or stop.is_set():
                    return

    stop = threading.Event()
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    listening.wait(10)
    worker = processes.start(["worker", "-c", "1"], env, tmp_path, "worker")
    app.send_task("ledger.sync.members", args=[[GOOD, BAD]])
    wait_for(lambda: "failed" in events or "succeeded" in events, timeout=90, what="the group task's end (its event)")
    stop.set()
    assert "succeeded" not in events, events
    shown = events["failed"]["exception"]  # what Flower shows for the task
    assert "SyncGroupFailed" in shown and "1 of 2 members failed" in shown and BAD in shown and GOOD not in shown

    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    records = json_lines((tmp_path / "worker.log").read_text())  # the worker's stdout and stderr, together
    failures = [r for r in records if r.get("corp_num") == BAD and r["level"] == "error"]
    assert {r["kind"] for r in failures} == {"payments", "usage", "refunds"}  # one line per member failure
    assert {r["run_id"] for r in failures} == failed_run_id(ledger_db, BAD)
    assert {(r["error_class"], r["popbill_code"]) for r in failures} == {("AuthError", MEMBER_CLOSED)}
    assert {r["kind"] for r in records if r.get("corp_num") == GOOD and r.get("status") == "succeeded"} == {
        "payments", "usage", "refunds"}  # fmt: skip


def test_ledger_sync_logs_like_the_worker_and_only_json(ledger_db, sim):  # noqa: F811
    sim.world.close_member(BAD)
    env = {"POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url, "LEDGER_LOG_FORMAT": "json",
           "LEDGER_LOG_LEVEL": "INFO", "POPBILL_RETRY_BACKOFF": "0.01"}  # fmt: skip
    result = ledger("sync", env_extra=env)
    assert result.returncode == 1, result.stderr
    records = json_lines(result.stderr)
    failures = [r for r in records if r.get("corp_num") == BAD and r["level"] == "error"]
    assert {r["kind"] for r in failures} == {"payments", "usage", "refunds"}
    assert {r["run_id"] for r in failures} == failed_run_id(ledger_db, BAD)
    assert {(r["error_class"], r["popbill_code"]) for r in failures} == {("AuthError", MEMBER_CLOSED)}
    done = [r for r in records if r.get("corp_num") == GOOD and r["level"] == "info"]
    assert {r["kind"] for r in done} == {"payments", "usage", "refunds"} and all(r["run_id"] for r in done)
    assert records[-1]["event"].startswith("3 of 6 syncs failed")  # the verdict, a JSON line too
    assert GOOD in result.stdout and BAD in result.stdout  # the table is the command's output, on stdout
