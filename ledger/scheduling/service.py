"""Slots: the run of a scheduled job that one beat (and only one) gets to start."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from ledger.scheduling.models import ScheduleClaim
from ledger.settings import parse_interval


def slot_for(spec: str, now: dt.datetime) -> dt.datetime:
    """The scheduled time a trigger at `now` belongs to: the interval it falls in, or for a
    crontab its minute (crontabs here never fire twice a minute)."""
    interval = parse_interval(spec)
    if interval:
        epoch = now.timestamp()
        return dt.datetime.fromtimestamp(epoch - epoch % interval, dt.UTC)
    return now.astimezone(dt.UTC).replace(second=0, microsecond=0)


def claim(engine: Engine, job: str, spec: str, *, now: dt.datetime | None = None) -> bool:
    """True for the first claim of this job's current slot; False for any later one."""
    slot = slot_for(spec, now or dt.datetime.now(dt.UTC))
    with engine.begin() as conn:
        claimed = conn.execute(
            insert(ScheduleClaim).values(job=job, slot=slot).on_conflict_do_nothing().returning(ScheduleClaim.job)
        ).first()
    return claimed is not None
