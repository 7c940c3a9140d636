"""Celery signal handlers, connected by workers.py: scheduled tasks' heartbeats, task durations,
the log context of a task, the worker's metrics port and the watchdog thread."""

from __future__ import annotations

import logging
import threading
import time

from celery import signals
from celery.worker.control import control_command
from prometheus_client import start_http_server

from ledger import context, logs
from ledger.health import checks, heartbeat, shutdown, watchdog
from ledger.metrics import process as process_metrics

log = logging.getLogger(__name__)
DATABASE_PROBE_SECONDS = 1.5  # within the health check's own wait for the answer (2 s)
_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_prerun(task_id=None, task=None, args=None, **_) -> None:
    _started[task_id] = time.perf_counter()
    fields = {"task_id": task_id, "task": task.name}
    if task.name == "ledger.sync.member" and args and len(args) >= 2:
        fields.update(corp_num=args[0], kind=args[1])
    logs.bind(**fields)
    if task.name in heartbeat.SCHEDULED_TASKS:
        try:
            heartbeat.task_started(context.engine(), task.name)
        except Exception as exc:  # noqa: BLE001 - the task itself reports a database outage
            log.warning("could not record the start of %s: %s", task.name, type(exc).__name__)


@signals.task_postrun.connect
def _task_postrun(task_id=None, task=None, state=None, **_) -> None:
    started = _started.pop(task_id, None)
    ok = state == "SUCCESS"
    if started is not None:
        process_metrics.TASK_SECONDS.labels(task.name, "ok" if ok else (state or "unknown").lower()).observe(
            time.perf_counter() - started
        )
    if task.name in heartbeat.SCHEDULED_TASKS:
        try:
            heartbeat.task_finished(context.engine(), task.name, ok=ok, detail=None if ok else state)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not record the end of %s: %s", task.name, type(exc).__name__)
    logs.unbind()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _guard_celery_handlers(**_) -> None:
    logs.guard_all_handlers()


@signals.worker_shutting_down.connect
def _bounded_shutdown(how=None, **_) -> None:
    if how == "Warm":
        shutdown.start(context.settings().worker_soft_shutdown_timeout)


@control_command(name=checks.HEALTH_COMMAND)
def _ledger_health(state, **_) -> dict:
    """Answers `ledger healthcheck worker`: this node is alive, and what it finds of the
    database (checked in a thread, so a database that hangs cannot stall the worker's loop)."""
    found: dict = {}

    def probe() -> None:
        found["database"] = checks.database(checks.engine_fetch(context.engine()))

    thread = threading.Thread(target=probe, name="ledger-health", daemon=True)
    thread.start()
    thread.join(DATABASE_PROBE_SECONDS)
    problem = found.get("database", f"database did not answer within {DATABASE_PROBE_SECONDS} s")
    return {"ok": "pong", "database": problem}


@signals.worker_ready.connect
def _worker_ready(**_) -> None:
    settings = context.settings()
    if settings.worker_metrics_port:

        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
        log.info("worker metrics on port %s", settings.worker_metrics_port)
    watchdog.start(context.engine, settings)
