"""The Celery app and its beat schedule, configured from the settings object.

    ledger worker        (or: celery -A workers worker -P threads -c 4, from the repository)
    ledger beat          (or: celery -A workers beat)

Reliability settings, and why:
- task_acks_late + task_reject_on_worker_lost: a task is acknowledged only when it has run,
  so a worker killed mid-task leaves the message to be delivered again. Every task is
  idempotent (the sync's lock and identity keys, the poller's SKIP LOCKED), so a second
  delivery is harmless.
- worker_prefetch_multiplier = 1: a worker holds only the task it runs, so a crash strands
  nothing else and long syncs do not starve short polls.
- the broker: RabbitMQ by default (durable queue, persistent messages, publisher confirms:
  nothing queued is lost in a broker crash, and a dead worker's task returns the moment its
  connection drops; README "Reliability" has the measurements). With Redis instead, the
  visibility timeout (default 2 h) must stay above the hard task time limit (default 1 h):
  Redis redelivers an unacknowledged task only after the timeout, which must never cut a live
  task. The limits are enforced by the prefork pool only; `ledger worker` runs threads (one engine
  and one Popbill client shared), where what bounds a task is every HTTP call's connect and
  read timeout and the retry policy's total time (a 1M-row member syncs in under a minute).
- timezone Asia/Seoul with enable_utc: crontabs read in Korean time, timestamps kept in UTC.
- no long ETAs or countdowns (retries wait at most 10 minutes): Redis redelivers a delayed
  message after the visibility timeout, running it twice.
- the catch-up (beat, every 5 minutes) enqueues again whatever a broker or worker lost.
- one beat: scheduled tasks claim their slot in PostgreSQL (schedule_claims), so a second
  beat process by mistake triggers nothing twice.
- worker_soft_shutdown_timeout (LEDGER_WORKER_SOFT_SHUTDOWN_TIMEOUT, default 10 s): a worker
  stopped with SIGTERM gives its running task that long to finish, then hands it back to the
  broker at once (ledger.health.shutdown: the thread pool cannot cancel a task, so Celery's own
  cold shutdown cannot either) instead of leaving it to the visibility timeout.
  docker-compose's stop_grace_period for the worker is longer than this.
- task events on (worker_send_task_events, task_send_sent_event): Flower and celery-exporter work.
- beat writes a heartbeat row as it ticks (ledger.health.beat); the worker runs the watchdog
  that alerts when beat or the nightly sync stops (ledger.health.watchdog).
"""

from __future__ import annotations

import datetime as dt

from celery import Celery
from celery.schedules import crontab, schedule

from ledger import context
from ledger.health import worker_hooks  # noqa: F401 - connects the Celery signal handlers
from ledger.settings import Settings, crontab_fields, parse_interval
from ledger.worker.broker import broker_options

TASK_MODULES = ["ledger.sync.tasks", "ledger.pending.tasks", "ledger.alerts.tasks", "ledger.reconcile.tasks",
                "ledger.retention.tasks"]  # fmt: skip


def _every(spec: str):
    seconds = parse_interval(spec)
    if seconds:
        return schedule(run_every=dt.timedelta(seconds=seconds))
    return crontab(**crontab_fields(spec))


def beat_schedule(settings: Settings) -> dict:
    entries = {
        "nightly-sync": ("ledger.sync.nightly", settings.schedule_sync),
        "poll-pending": ("ledger.pending.poll", settings.schedule_pending),
        # Re-enqueues the syncs a broker or worker lost, and closes runs nothing is running.
        "catch-up": ("ledger.sync.catch_up", settings.schedule_catch_up),
        "check-balances": ("ledger.alerts.check_balances", settings.schedule_balances),
        # After the nightly sync (02:00) has had time to finish; reconciles what it wrote.
        "reconcile": ("ledger.reconcile.nightly", settings.schedule_reconcile),
        # Retries the outbox, and re-posts open alerts to Alertmanager before their lease lapses.
        "deliver-outbox": ("ledger.alerts.deliver", f"{settings.alertmanager_repost}s"),
        # Prunes runs, readings, sent notifications and claims by policy (ledger.retention).
        "prune": ("ledger.retention.prune", settings.schedule_retention),
    }
    return {name: {"task": task, "schedule": _every(spec)} for name, (task, spec) in entries.items() if spec != "off"}


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or context.settings()
    app = Celery("ledger", broker=settings.broker_url, include=TASK_MODULES)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=broker_options(settings),
        broker_heartbeat=10,  # RabbitMQ: a dead connection (worker or broker) is noticed in seconds
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=max(1, settings.task_time_limit - 60),
        timezone="Asia/Seoul",
        enable_utc=True,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
        beat_scheduler="ledger.health.beat:HeartbeatScheduler",
        # A tick, and so a heartbeat, well within the age at which beat counts as down.
        beat_max_loop_interval=max(1, min(30, settings.health_beat_max_age // 4)),
        worker_soft_shutdown_timeout=settings.worker_soft_shutdown_timeout,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app

