"""Heartbeat rows: beat's on every tick, and each scheduled task's start and end."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, update
from sqlalchemy.dialects.postgresql import insert

from ledger.health.models import BEAT, Heartbeat

# The tasks beat starts; each records when it last ran (the watchdog and metrics read them).
SCHEDULED_TASKS = ("ledger.sync.nightly", "ledger.pending.poll", "ledger.alerts.check_balances",
                   "ledger.reconcile.nightly", "ledger.alerts.deliver", "ledger.retention.prune")  # fmt: skip


def task_name(task: str) -> str:
    return f"task:{task}"


def beat_tick(engine: Engine, *, now: dt.datetime | None = None) -> None:
    now = now or dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Heartbeat).values(name=BEAT, started_at=now, status="running")
            .on_conflict_do_update(index_elements=["name"], set_={"started_at": now})
        )  # fmt: skip


def task_started(engine: Engine, task: str, *, now: dt.datetime | None = None) -> None:
    now = now or dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Heartbeat).values(name=task_name(task), started_at=now, status="running")
            .on_conflict_do_update(index_elements=["name"], set_={"started_at": now, "status": "running"})
        )  # fmt: skip


def task_finished(engine: Engine, task: str, *, ok: bool, detail: str | None = None,
                  now: dt.datetime | None = None) -> None:  # fmt: skip
    now = now or dt.datetime.now(dt.UTC)
    values = {"finished_at": now, "status": "succeeded" if ok else "failed", "detail": detail}
    if ok:
        values["succeeded_at"] = now
    with engine.begin() as conn:
        conn.execute(update(Heartbeat).where(Heartbeat.name == task_name(task)).values(**values))
