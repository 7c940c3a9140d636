"""Celery tasks of the sync: thin, taking ids, calling the functions the CLI calls."""

from __future__ import annotations

import logging
from functools import partial

from celery import shared_task

from ledger import context, logs
from ledger.metrics.process import ROWS_WRITTEN
from ledger.scheduling.service import claim
from ledger.sync.catch_up import close_abandoned_runs, overdue
from ledger.sync.outcomes import log_results
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


class SyncGroupFailed(Exception):
    """Some members of a group failed for good: the task ends FAILURE (what Flower shows), and
    its message lists each member, kind and reason."""

    def __init__(self, members: int, failures: list[dict]) -> None:
        listed = "; ".join(f"{f['corp_num']} {f['kind']}: {f['error']}" for f in failures)
        super().__init__(f"{len({f['corp_num'] for f in failures})} of {members} members failed: {listed}"[:4000])
        self.failures = failures


@shared_task(name="ledger.sync.members", bind=True, max_retries=5, throws=(SyncGroupFailed,))
def sync_members_task(self, corp_nums: list[str], failed_before: list[dict] | None = None,
                      members: int | None = None) -> dict:  # fmt: skip
    """Every kind of these members, LEDGER_SYNC_JOBS_PER_TASK at once (the worker's threads
    run several groups at once besides). A duplicate delivery is harmless: the sync leases turn a
    second sync of a (member, kind) away while the first runs, and identity keys make a
    later rerun write nothing new. Members whose failure was transient are retried alone; the
    task then ends SUCCESS only if every member synced, else FAILURE naming those that did not
    (the ones that failed before a retry included)."""
    settings = context.settings()
    members = members or len(corp_nums)
    # Lost database connections are retried in here, for a bounded time (sync/resilient.py).
    results = sync_all(
        context.engine(), context.client(), corp_nums=corp_nums, options=SyncOptions.from_settings(settings),
        jobs=settings.sync_jobs_per_task, sync=partial(sync_member_kinds_resilient, settings=settings),
    )  # fmt: skip
    for result in results:
        ROWS_WRITTEN.labels(result.kind, "inserted").inc(result.inserted)
        ROWS_WRITTEN.labels(result.kind, "updated").inc(result.updated)
    again = sorted({r.corp_num for r in results if r.status == "failed" and r.retryable})
    if self.request.retries >= self.max_retries:
        again = []  # no tries left: these failures are final
    # Short countdowns only: a long ETA outlives the broker's visibility timeout.
    countdown = min(600, 30 * 2**self.request.retries)
    log_results(results, retried=again, retry_in=countdown)
    failed = list(failed_before or []) + [
        {"corp_num": r.corp_num, "kind": r.kind, "run_id": r.run_id, "error": r.error}
        for r in results if r.status == "failed" and r.corp_num not in again
    ]  # fmt: skip
    if again:
        raise self.retry(args=[again], kwargs={"failed_before": failed, "members": members}, countdown=countdown,
                         exc=RetryingMembers(again, results))  # fmt: skip
    if failed:
        raise SyncGroupFailed(members, failed)
    return {"members": members, "failed": 0}


class RetryingMembers(Exception):
    """Why a group task is retried: the members whose failure was transient, and each reason
    (shown in the worker's retry line and in Flower)."""

    def __init__(self, corp_nums: list[str], results) -> None:
        reasons = [f"{r.corp_num} {r.kind}: {r.error}" for r in results if r.status == "failed" and r.corp_num in corp_nums]
        super().__init__(f"{len(corp_nums)} members to retry: {'; '.join(reasons)}"[:2000])


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
    countdown = min(600, 30 * 2**self.request.retries)
    retrying = result.status == "failed" and result.retryable and self.request.retries < self.max_retries
    log_results([result], retried=[corp_num] if retrying else [], retry_in=countdown)
    ROWS_WRITTEN.labels(kind, "inserted").inc(result.inserted)
    ROWS_WRITTEN.labels(kind, "updated").inc(result.updated)
    if retrying:
        raise self.retry(countdown=countdown, exc=RetryingMembers([corp_num], [result]))
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
