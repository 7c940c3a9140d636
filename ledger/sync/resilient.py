"""sync_member(_kinds) that outlasts a database restart: what the CLI and the Celery tasks run.

A lost database connection (the server restarting, a connection terminated) is transient: the
sync is tried again with jittered backoff for a bounded time, from where its committed pages
left it. A run the outage cut short is recorded as failed, with why, as soon as the database
answers again (never left `running`); if it never answers within the bound, the failure is
returned (never raised), so the caller goes on with the other members. Only the kinds the outage cut short are tried again.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import DBAPIError

from ledger.db.transient import is_transient, retry_transient, retrying
from ledger.members.models import Member
from ledger.popbill import PopbillClient
from ledger.settings import Settings
from ledger.sync.locks import sync_lock
from ledger.sync.models import KINDS, SyncRun
from ledger.sync.service import SyncResult, sync_member_kinds

log = logging.getLogger(__name__)


class _DatabaseLost(Exception):
    """Syncs that failed (and said so in their runs) because the database went away."""

    def __init__(self, results: list[SyncResult]) -> None:
        super().__init__(results[0].error)
        self.results = results


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _DatabaseLost) or is_transient(exc)


def sync_member_resilient(
    engine: Engine, client: PopbillClient, corp_num: str, kind: str, *, settings: Settings, **kwargs
) -> SyncResult:
    return sync_member_kinds_resilient(engine, client, corp_num, (kind,), settings=settings, **kwargs)[0]


def sync_member_kinds_resilient(
    engine: Engine,
    client: PopbillClient,
    corp_num: str,
    kinds: tuple[str, ...] = KINDS,
    *,
    settings: Settings,
    **kwargs,
) -> list[SyncResult]:
    done: dict[str, SyncResult] = {}
    to_do = list(kinds)

    def attempt() -> None:
        results = sync_member_kinds(engine, client, corp_num, tuple(to_do), **kwargs)
        done.update((r.kind, r) for r in results)
        lost = [r for r in results if r.status == "failed" and r.database_lost]
        to_do[:] = [r.kind for r in lost]
        if lost:
            raise _DatabaseLost(lost)

    policy = retrying(
        max_seconds=settings.db_retry_seconds, first_wait=0.5, retry=_transient,
        before_sleep=lambda state: log.warning(
            "sync of %s %s lost the database (%s); trying again in %.1f s",
            corp_num, ", ".join(to_do), state.outcome.exception(), state.next_action.sleep,
        ),
    )  # fmt: skip
    try:
        policy(attempt)
    except _DatabaseLost:
        pass  # their runs already say failed, and why
    except DBAPIError as exc:
        if not is_transient(exc):
            raise
        error = f"database unavailable: {_reason(exc)}"
        log.error("sync of %s %s gave up: %s", corp_num, ", ".join(to_do), error)
        for kind in to_do:
            _record_cut_short(engine, corp_num, kind, error)
            done[kind] = SyncResult(corp_num, kind, status="failed", error=error, retryable=True, database_lost=True)
    return [done[kind] for kind in kinds]


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
        retry_transient(record, max_seconds=5)
    except DBAPIError:
        log.warning("could not record the failed sync of %s %s: the database is still away", corp_num, kind)
