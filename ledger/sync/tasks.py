"""Celery tasks of the sync: thin, taking ids, calling the functions the CLI calls."""

from __future__ import annotations

import logging

from celery import shared_task

from ledger import context, logs
from ledger.metrics.process import ROWS_WRITTEN
from ledger.scheduling.service import claim
from ledger.sync.catch_up import close_abandoned_runs, overdue
from ledger.sync.models import KINDS
from ledger.sync.resilient import sync_member_resilient
from ledger.sync.service import members_to_sync
from ledger.sync.windows import SyncOptions

log = logging.getLogger(__name__)


@shared_task(name="ledger.sync.nightly")
def nightly_sync(from_beat: bool = True) -> int:
    """Fan out one small task per (active member, kind). No chord: each stands alone."""
    settings, engine = context.settings(), context.engine()
    if from_beat and not claim(engine, "sync", settings.schedule_sync):
        return 0  # another beat already started this night's sync
    work = [(corp, kind) for corp in members_to_sync(engine) for kind in KINDS]
    for corp, kind in work:
        sync_member_task.delay(corp, kind)
    return len(work)


@shared_task(name="ledger.sync.member", bind=True, max_retries=5)
def sync_member_task(self, corp_num: str, kind: str) -> dict:
    """A duplicate delivery is harmless: the sync lock turns it away while the first runs,
    and identity keys make a later rerun write nothing new."""
    settings = context.settings()
    # Lost database connections are retried in here, for a bounded time (sync/resilient.py).
    result = sync_member_resilient(
        context.engine(), context.client(), corp_num, kind, settings=settings,
        options=SyncOptions.from_settings(settings),
    )  # fmt: skip
    logs.bind(run_id=result.run_id)
    log.info("sync of %s %s %s: %s rows inserted, %s updated", corp_num, kind, result.status, result.inserted,
             result.updated)  # fmt: skip
    ROWS_WRITTEN.labels(kind, "inserted").inc(result.inserted)
    ROWS_WRITTEN.labels(kind, "updated").inc(result.updated)
    if result.status == "failed" and result.retryable:
        # Short countdowns only: a long ETA outlives the broker's visibility timeout.
        raise self.retry(countdown=min(600, 30 * 2**self.request.retries))
    return {"corp_num": corp_num, "kind": kind, "status": result.status, "inserted": result.inserted}


@shared_task(name="ledger.sync.catch_up")
def catch_up(from_beat: bool = True) -> int:
    """Enqueue every sync that should have succeeded by now and has not (sync/catch_up.py)."""
    settings, engine = context.settings(), context.engine()
    if from_beat and not claim(engine, "catch_up", settings.schedule_catch_up):
        return 0
    close_abandoned_runs(engine)
    work = overdue(engine, settings)
    for corp, kind in work:
        sync_member_task.delay(corp, kind)
    return len(work)
