"""What `ledger healthcheck` and the watchdog check. Each check returns None when healthy, or
one line saying what is wrong."""

from __future__ import annotations

import datetime as dt

from celery import Celery
from kombu import Connection
from sqlalchemy import Engine, select, text

from ledger.health.models import BEAT, Heartbeat
from ledger.kst import KST
from ledger.settings import Settings
from ledger.worker.broker import broker_options


def database(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        return f"database unreachable: {reason}"
    return None


def broker(settings: Settings) -> str | None:
    try:
        with Connection(settings.broker_url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)
    except Exception as exc:  # noqa: BLE001
        return f"broker unreachable: {type(exc).__name__}"
    return None


def workers(app) -> str | None:
    answers = app.control.ping(timeout=2.0)
    if not answers:
        return "no worker answered a ping within 2 s"
    return None


def beat(engine: Engine, settings: Settings, now: dt.datetime) -> str | None:
    with engine.connect() as conn:
        last = conn.execute(select(Heartbeat.started_at).where(Heartbeat.name == BEAT)).scalar()
    if last is None:
        return "beat has never written a heartbeat"
    age = (now - last).total_seconds()
    if age > settings.health_beat_max_age:
        return f"beat heartbeat is {age / 60:.1f} minutes old (limit {settings.health_beat_max_age / 60:.1f})"
    return None


_NOT_SYNCED_SINCE = text(
    """
    SELECT count(*) FROM members m
    CROSS JOIN (VALUES ('payments'), ('usage'), ('refunds')) AS k(kind)
    LEFT JOIN sync_states s ON s.member_id = m.id AND s.kind = k.kind
    WHERE m.active AND m.created_at < :day_start
      AND (s.last_success_at IS NULL OR s.last_success_at < :day_start)
    """
)


def nightly_sync(engine: Engine, settings: Settings, now: dt.datetime) -> str | None:
    """Past the configured hour (Korean time), every active member's histories must have synced
    since that Korean day began."""
    deadline = settings.health_sync_deadline
    if deadline is None or settings.schedule_sync.strip().lower() == "off":
        return None
    local = now.astimezone(KST)
    day = local.date() if local.time() >= deadline else local.date() - dt.timedelta(days=1)
    day_start = dt.datetime.combine(day, dt.time(0), tzinfo=KST)
    with engine.connect() as conn:
        missing = conn.execute(_NOT_SYNCED_SINCE, {"day_start": day_start}).scalar()
    if missing:
        return (f"nightly sync not finished by {deadline.strftime('%H:%M')} KST on {day}: "
                f"{missing} member histories not synced since")  # fmt: skip
    return None


TARGETS = ("worker", "beat", "all")


def run(target: str, engine: Engine, settings: Settings, *, app=None, now: dt.datetime | None = None) -> list[str]:
    """The problems found, first the ones that make the rest unknowable."""
    now = now or dt.datetime.now(dt.UTC)
    problem = database(engine)
    if problem:
        return [problem]
    problems = []
    broker_problem = broker(settings)
    if broker_problem:
        problems.append(broker_problem)
    if target in ("worker", "all") and not broker_problem:
        if app is None:  # a bare app: pinging needs the broker, not the tasks or the worker's hooks
            app = Celery("ledger", broker=settings.broker_url, broker_transport_options=broker_options(settings))
        problems.append(workers(app))
    if target in ("beat", "all"):
        problems.append(beat(engine, settings, now))
    if target == "all":
        problems.append(nightly_sync(engine, settings, now))
    return [p for p in problems if p]
