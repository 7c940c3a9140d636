"""The catch-up: whatever a broker or a worker lost is redone within minutes, not next night.

Every few minutes (beat's `catch-up` entry), each active member x kind whose last successful
sync is older than the last scheduled sync (the newest slot beat claimed for it, once a grace
period has passed) or older than the staleness limit is enqueued again, unless a run of it
started recently. Runs left `running` by a dead process (their lock is free) are closed as
abandoned first, so `ledger status` never shows a run that nothing is running.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select, text, update

from ledger.settings import Settings
from ledger.sync.locks import sync_lock
from ledger.sync.models import SyncRun

_OVERDUE = text(
    """
    WITH due AS (SELECT max(slot) AS since FROM schedule_claims WHERE job = 'sync')
    SELECT m.corp_num, k.kind
    FROM members m CROSS JOIN (VALUES ('payments'), ('usage'), ('refunds')) AS k(kind) CROSS JOIN due
    LEFT JOIN sync_states s ON s.member_id = m.id AND s.kind = k.kind
    WHERE m.active
      AND (   (due.since IS NOT NULL AND due.since < :now - make_interval(secs => :grace)
               AND (s.last_success_at IS NULL OR s.last_success_at < due.since))
           OR s.last_success_at < :now - make_interval(secs => :max_age))
      AND NOT EXISTS (
          SELECT 1 FROM sync_runs r
          WHERE r.member_id = m.id AND r.kind = k.kind AND r.status <> 'skipped'
            AND (r.status = 'running' OR r.started_at > :now - make_interval(secs => :grace)))
    ORDER BY m.corp_num, k.kind
    """
)


def overdue(engine: Engine, settings: Settings, *, now: dt.datetime | None = None) -> list[tuple[str, str]]:
    """(corp_num, kind) of every active member's sync that should have succeeded by now."""
    if settings.schedule_sync.strip().lower() == "off":
        return []  # no schedule, nothing is ever overdue
    params = {"now": now or dt.datetime.now(dt.UTC), "grace": settings.catch_up_grace,
              "max_age": settings.reconcile_max_sync_age}  # fmt: skip
    with engine.connect() as conn:
        return [(r.corp_num, r.kind) for r in conn.execute(_OVERDUE, params)]


def close_abandoned_runs(engine: Engine) -> int:
    """Mark `running` runs whose lease nobody live holds (their process died) as abandoned."""
    with engine.connect() as conn:
        stale = conn.execute(
            select(SyncRun.member_id, SyncRun.kind).where(SyncRun.status == "running").distinct()
        ).all()
    closed = 0
    for member_id, kind in stale:
        with sync_lock(engine, member_id, kind) as holder:
            if holder is not None:
                continue  # alive
            with engine.begin() as conn:
                closed += conn.execute(
                    update(SyncRun)
                    .where(SyncRun.member_id == member_id, SyncRun.kind == kind, SyncRun.status == "running")
                    .values(status="abandoned", finished_at=func.now(), error="the process running it stopped")
                ).rowcount
    return closed
