"""Celery tasks of the sync: thin, taking ids, calling the functions the CLI calls."""

from __future__ import annotations

import logging
from functools import partial

from celery import shared_task

from ledger import context, logs
from ledger.metrics.process import ROWS_WRITTEN
from ledger.scheduling.service import claim
from ledger.sync.catch_up import close_abandoned_runs, overdue
from ledger.sync.resilient import sync_member_kinds_resilient, sync_member_resilient
from ledger.sync.service import members_to_sync, sync_all
from ledger.sync.windows import SyncOptions

log = logging.getLogger(__name__)


def member_groups(corp_nums: list[str], size: int) -> list[list[str]]:
    return [corp_nums[n : n + size] for n in range(0, len(corp_nums), size)]


@shared_task(name="ledger.sync.nightly")
def nightly_sync(from_beat: bool = True) -> int:
    """Fan out one task per group of members (all three kinds of each): 100,000 members are
    2,000 messages at the default group size, enqueued in about a second, and a member's
    token serves its three kinds in one process. No chord: each group stands alone."""
    settings, engine = context.settings(), context.engine()
    if from_beat and not claim(engine, "sync", settings.schedule_sync):
        return 0  # another beat already started this night's sync
    groups = member_groups(members_to_sync(engine), settings.sync_members_per_task)
    for group in groups:
        sync_members_task.delay(group)
    return len(groups)


@shared_task(name="ledger.sync.members", bind=True, max_retries=5)
def sync_members_task(self, corp_nums: list[str]) -> dict:
    """Every kind of these members, LEDGER_SYNC_JOBS_PER_TASK at once (the worker's threads
    run several groups at once besides). A duplicate delivery is harmless: the sync leases turn a
    second sync of a (member, kind) away while the first runs, and identity keys make a
    later rerun write nothing new. Members whose failure was transient are retried alone."""
    settings = context.settings()
    # Lost database connections are retried in here, for a bounded time (sync/resilient.py).
    results = sync_all(
        context.engine(), context.client(), corp_nums=corp_nums, options=SyncOptions.from_settings(settings),
        jobs=settings.sync_jobs_per_task, sync=partial(sync_member_kinds_resilient, settings=settings),
    )  # fmt: skip
    for result in results:
        ROWS_WRITTEN.labels(result.kind, "inserted").inc(result.inserted)
        ROWS_WRITTEN.labels(result.kind, "updated").inc(result.updated)
    again = sorted({r.corp_num for r in results if r.status == "failed" and r.retryable})
    if again:
        # Short countdowns only: a long ETA outlives the broker's visibility timeout.
        raise self.retry(args=[again], countdown=min(600, 30 * 2**self.request.retries))
    return {"members": len(corp_nums), "failed": sum(r.status == "failed" for r in results)}


@shared_task(name="ledger.sync.member", bind=True, max_retries=5)
def sync_member_task(self, corp_num: str, kind: str) -> dict:
    """One member and kind (on demand, and the catch-up). Duplicates are harmless, as above."""
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
