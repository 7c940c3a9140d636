"""sync_member that outlasts a database restart: what the CLI and the Celery task run.

A lost database connection (the server restarting, a connection terminated) is transient: the
sync is tried again with jittered backoff for a bounded time, from where its committed pages
left it. A run the outage cut short is recorded as failed, with why, as soon as the database
answers again (never left `running`); if it never answers within the bound, the failure is
returned (never raised), so the caller goes on with the other members.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import DBAPIError

from ledger.db.transient import is_transient, retry_transient
from ledger.members.models import Member
from ledger.popbill import PopbillClient
from ledger.settings import Settings
from ledger.sync.lock import sync_lock
from ledger.sync.models import SyncRun
from ledger.sync.service import SyncResult, sync_member

log = logging.getLogger(__name__)


class _DatabaseLost(Exception):
    """A sync that failed (and said so in its run) because the database went away."""

    def __init__(self, result: SyncResult) -> None:
        super().__init__(result.error)
        self.result = result


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _DatabaseLost) or is_transient(exc)


def sync_member_resilient(
    engine: Engine, client: PopbillClient, corp_num: str, kind: str, *, settings: Settings, **kwargs
) -> SyncResult:
    def attempt() -> SyncResult:
        result = sync_member(engine, client, corp_num, kind, **kwargs)
        if result.status == "failed" and result.database_lost:
            raise _DatabaseLost(result)
        return result

    from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_random_exponential

    retrying = Retrying(
        retry=retry_if_exception(_transient),
        wait=wait_random_exponential(multiplier=0.5, max=max(1.0, settings.db_retry_seconds / 4)),
        stop=stop_after_attempt(settings.db_retry_attempts) | stop_after_delay(settings.db_retry_seconds),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "sync of %s %s lost the database (%s); trying again in %.1f s",
            corp_num, kind, state.outcome.exception(), state.next_action.sleep,
        ),
    )  # fmt: skip
    try:
        return retrying(attempt)
    except _DatabaseLost as lost:
        return lost.result  # its run already says failed, and why
    except DBAPIError as exc:
        if not is_transient(exc):
            raise
        error = f"database unavailable: {_reason(exc)}"
        log.error("sync of %s %s gave up: %s", corp_num, kind, error)
        _record_cut_short(engine, corp_num, kind, error)
        return SyncResult(corp_num, kind, status="failed", error=error, retryable=True, database_lost=True)


def _reason(exc: DBAPIError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0][:300]


def _record_cut_short(engine: Engine, corp_num: str, kind: str, error: str) -> None:
    """Mark the runs an outage left `running` as failed, if the database answers by now. Only
    under the sync's lock: a `running` run whose lock is free has no process behind it."""

    def record() -> None:
        with engine.connect() as conn:
            member_id = conn.scalar(select(Member.id).where(Member.corp_num == corp_num))
        if member_id is None:
            return
        with sync_lock(engine, member_id, kind) as holder:
            if holder is not None:
                return  # a live sync has it; its run is its own
            with engine.begin() as conn:
                conn.execute(
                    update(SyncRun)
                    .where(SyncRun.member_id == member_id, SyncRun.kind == kind, SyncRun.status == "running")
                    .values(status="failed", finished_at=func.now(), error=error)
                )

    try:
        retry_transient(record, attempts=3, max_seconds=5)
    except DBAPIError:
        log.warning("could not record the failed sync of %s %s: the database is still away", corp_num, kind)
