"""Syncing members' histories: the plain functions the CLI and the Celery tasks share.

`sync_member_kinds` syncs several kinds of one member with shared bookkeeping: one statement
starts them (ledger/sync/sql.py START), each kind is walked into the ledger page by page
(ledger/sync/walk.py, with one object per kind in ledger/sync/kinds.py), and one statement
closes them (FINISH). `sync_member` is it for one kind; `sync_all` runs many members at once.
The leases (ledger/sync/locks.py), all of a process's on one connection of their own, keep two
syncs of one (member, kind) from running at once, and no read-only role can take them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Connection, Engine, select

from ledger.db.among import among
from ledger.db.transient import is_transient
from ledger.history.screening import RowLimits
from ledger.kst import KST
from ledger.members.models import Member
from ledger.members.service import MemberError
from ledger.popbill import PopbillClient
from ledger.popbill.codes import Codes
from ledger.popbill.errors import PopbillError
from ledger.popbill.retry import should_retry
from ledger.sync import repair, sql
from ledger.sync.deferred import Advance, advance_params
from ledger.sync.interrupt import SyncInterrupted, check
from ledger.sync.job import Job, MemberRun, Progress, SyncResult
from ledger.sync.kinds import HISTORIES
from ledger.sync.locks import locks_for
from ledger.sync.models import KINDS
from ledger.sync.walk import walk_dated, walk_newest_first
from ledger.sync.windows import SyncOptions

__all__ = ["SyncResult", "members_to_sync", "sync_all", "sync_member", "sync_member_kinds"]

log = logging.getLogger(__name__)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def sync_member(
    engine: Engine,
    client: PopbillClient,
    corp_num: str,
    kind: str,
    *,
    today: dt.date | None = None,
    since: dt.date | None = None,
    options: SyncOptions | None = None,
    codes: Codes | None = None,
    progress: Progress | None = None,
    full: bool = False,
    stop: threading.Event | None = None,
) -> SyncResult:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return sync_member_kinds(
        engine, client, corp_num, (kind,), today=today, since=since, options=options, codes=codes,
        progress=progress, full=full, stop=stop,
    )[0]  # fmt: skip


def sync_member_kinds(
    engine: Engine,
    client: PopbillClient,
    corp_num: str,
    kinds: tuple[str, ...] = KINDS,
    *,
    today: dt.date | None = None,
    since: dt.date | None = None,
    options: SyncOptions | None = None,
    codes: Codes | None = None,
    progress: Progress | None = None,
    full: bool = False,
    stop: threading.Event | None = None,
) -> list[SyncResult]:
    """Sync these kinds of one member, one after another, sharing the start and the close.
    The member's Popbill token is issued once and serves every kind (the client caches it)."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {unknown or kinds!r}")
    today = today or client.today()  # Popbill's clock may be asked: before a connection is borrowed
    locks, member, holders = locks_for(engine), None, {}
    try:
        with engine.connect() as conn:
            row = conn.execute(sql.MEMBER, {"corp": corp_num}).one_or_none()
            if row is None:
                raise MemberError(f"CorpNum: {corp_num} is not a member")
            member = MemberRun(
                engine, client, row.id, corp_num, row.user_id, today, since,
                options or SyncOptions(), progress, full, stop,
            )  # fmt: skip
            holders = locks.acquire(member.member_id, list(kinds))
            limits = RowLimits.for_sync(client.settings, member.today)
            jobs = [Job(member, HISTORIES[kind], SyncResult(corp_num, kind), limits) for kind in kinds]
            running = [job for job in jobs if holders[job.kind] is None]
            skipped = [job for job in jobs if holders[job.kind] is not None]
            for job in skipped:
                job.result.error = holders[job.kind].describe()
                job.result.locked_by_other = not holders[job.kind].is_sync
            _start(conn, running, skipped, codes)
        if progress:
            for job in running:
                progress(job.result)  # started: a run id to show (and to close if the process must stop)
        for job in running:
            _run(job)
        if running:
            _finish(member, running)
    finally:
        if member is not None:
            locks.release(member.member_id, [kind for kind, holder in holders.items() if holder is None])
    return [job.result for job in jobs]


def _start(conn: Connection, running: list[Job], skipped: list[Job], codes: Codes | None) -> None:
    """One transaction: abandon a dead process's runs, record ours, read where each kind stands."""
    sql.durable_commits(conn)
    if running:
        m = running[0].member.member_id
        given = {"settle": None, "refund": None}
        if codes is not None:
            given = {"settle": sorted(codes.settle_pending), "refund": sorted(codes.refund_pending)}
        params = {"m": m, "kinds": [job.kind for job in running], "repair_attempts": repair.MAX_FETCH_ATTEMPTS, **given}
        started = {r.kind: r for r in conn.execute(sql.START, params)}
        for job in running:
            row = started[job.kind]
            job.result.run_id = row.id
            job.high_water = row.high_water
            job.last_full_pass_at = row.last_full_pass_at
            job.repairs_due = row.repairs_due
            job.oldest_pending = row.oldest_pending.astimezone(KST).date() if row.oldest_pending else None
    if skipped:
        m = skipped[0].member.member_id
        params = {"m": m, "kinds": [job.kind for job in skipped], "errors": [job.result.error for job in skipped]}
        ids = {r.kind: r.id for r in conn.execute(sql.SKIPPED, params)}
        for job in skipped:
            job.result.status, job.result.run_id = "skipped", ids[job.kind]
    sql.commit_durable(conn)


def _run(job: Job) -> None:
    result = job.result
    try:
        check(job.member.stop)  # a kind not begun when a stop was asked for is not begun
        (walk_dated if job.history.dated else walk_newest_first)(job)
        repair.finish(job)
        result.status = "succeeded"
    except SyncInterrupted as exc:
        result.status, result.error = "interrupted", str(exc)
    except Exception as exc:
        result.status, result.error = "failed", _describe(exc)
        result.error_class = type(exc).__name__
        result.popbill_code = exc.code if isinstance(exc, PopbillError) else None
        result.database_lost = is_transient(exc)
        result.retryable = result.database_lost or should_retry(exc, idempotent=True)
        if not isinstance(exc, (PopbillError, MemberError)):
            log.exception("sync of %s %s failed", job.member.corp_num, job.kind)


def _finish(member: MemberRun, jobs: list[Job]) -> None:
    """One transaction: every run's outcome, and the deferred advance of empty pages."""
    runs: dict[str, list] = {column: [] for column in sql.RUN_COLUMNS}
    advances = []
    for job in jobs:
        r = job.result
        for column, value in zip(runs.values(), (r.run_id, r.status, r.error, r.pages, r.api_calls, r.inserted,
                                                 r.updated, r.unchanged), strict=True):  # fmt: skip
            column.append(value)
        advance = job.deferred.take()
        if r.status == "failed":
            advance = Advance()  # as if the failed run's unwritten pages were never fetched
        advances.append((job.kind, dataclasses.replace(advance, succeeded=r.status == "succeeded")))
    with member.engine.connect() as conn:
        sql.durable_commits(conn)
        conn.execute(sql.FINISH, {**runs, **advance_params(member.member_id, advances, durable=True)})
        sql.commit_durable(conn)


def members_to_sync(engine: Engine, corp_nums: list[str] | None = None) -> list[str]:
    """The named members, or every active one."""
    with engine.connect() as conn:
        query = select(Member.corp_num).order_by(Member.corp_num)
        query = query.where(among(Member.corp_num, corp_nums)) if corp_nums else query.where(Member.active.is_(True))
        return list(conn.scalars(query))


def sync_all(
    engine: Engine,
    client: PopbillClient,
    *,
    corp_nums: list[str] | None = None,
    kinds: tuple[str, ...] = KINDS,
    on_result: Callable[[SyncResult], None] | None = None,
    jobs: int = 1,
    sync: Callable[..., list[SyncResult]] = sync_member_kinds,  # or one that retries (sync/resilient.py)
    **kwargs,
) -> list[SyncResult]:
    """Every active member (or the named ones) and kind; one failure never stops the rest.

    With jobs > 1, that many members are synced at once. A sync holds a database connection
    only while it writes, so jobs can be far more than the pool's connections: most of a
    member's time is spent waiting on Popbill (POPBILL_MAX_CONCURRENCY bounds the calls).
    """
    members = members_to_sync(engine, corp_nums)

    def one(corp_num: str) -> list[SyncResult]:
        if kwargs.get("stop") is not None and kwargs["stop"].is_set():
            return [SyncResult(corp_num, kind, status="not started") for kind in kinds]
        results = sync(engine, client, corp_num, kinds, **kwargs)
        if on_result:
            for result in results:
                on_result(result)
        return results

    if jobs <= 1:
        batches = [one(corp) for corp in members]
    else:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sync") as pool:
            batches = list(pool.map(one, members))
    return [result for batch in batches for result in batch]
