"""Syncing members' histories: the plain functions the CLI and the Celery tasks share.

`sync_member_kinds` syncs several kinds of one member with shared bookkeeping: one statement
starts them (ledger/sync/sql.py START: the member, its leases, its runs, where each kind
stands), each kind is walked into the ledger page by page (ledger/sync/walk.py, with one
object per kind in ledger/sync/kinds.py), and one statement closes them (FINISH: a small last
page's rows, the outcomes, the leases released, the states advanced). The starts and closes
of a process's syncs that come at about the same time share their statement
(ledger/sync/batches.py). `sync_member` is it for one kind; `sync_all` runs many members at
once. The leases (ledger/sync/locks.py) name one connection of the process's own, keep two
syncs of one (member, kind) from running at once, and no read-only role can take them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from ledger.db.among import among
from ledger.db.driver import borrowed
from ledger.db.transient import is_transient
from ledger.history.screening import RowLimits
from ledger.history.writer import WriteCounts
from ledger.kst import KST
from ledger.members.models import Member
from ledger.members.service import MemberError
from ledger.popbill import PopbillClient
from ledger.popbill.codes import Codes
from ledger.popbill.errors import PopbillError
from ledger.popbill.retry import should_retry
from ledger.sync import repair, sql
from ledger.sync.batches import Combiner
from ledger.sync.deferred import Advance, advance_params
from ledger.sync.interrupt import SyncInterrupted, check
from ledger.sync.job import Job, MemberRun, Progress, SyncResult
from ledger.sync.kinds import HISTORIES
from ledger.sync.locks import Holder, SyncLocks, locks_for
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
    locks = locks_for(engine)
    started = _start(engine, locks, corp_num, list(kinds), codes)
    closed = False
    try:
        member = MemberRun(
            engine, client, started.member_id, corp_num, started.user_id, today, since, options or SyncOptions(),
            progress, full, stop,
        )  # fmt: skip
        limits = RowLimits.for_sync(client.settings, member.today)
        jobs = [Job(member, HISTORIES[kind], SyncResult(corp_num, kind), limits) for kind in kinds]
        running = [job for job in jobs if job.kind in started.states]
        for job in jobs:
            if job.kind in started.states:
                (job.result.run_id, job.high_water, job.last_full_pass_at, job.oldest_pending,
                 job.repairs_due) = started.states[job.kind]  # fmt: skip
            else:
                holder = started.holders[job.kind]
                job.result.status, job.result.error = "skipped", holder.describe()
                job.result.locked_by_other = not holder.is_sync
                job.result.run_id = started.skipped_runs.get(job.kind)
        if progress:
            for job in running:
                progress(job.result)  # started: a run id to show (and to close if the process must stop)
        for job in running:
            _run(job)
        if running:
            _finish(member, running, locks)
        closed = True
        for job in running:
            if job.result.status == "succeeded":
                _mark_repairs(job)
    finally:
        if not closed:  # the close did not release them
            locks.release_rows(started.member_id, list(started.states))
    return [job.result for job in jobs]


@dataclasses.dataclass
class _Started:
    member_id: int
    user_id: str | None
    states: dict  # kind -> (run id, high water, last full pass, oldest pending, repairs due) of the kinds taken
    holders: dict  # kind -> Holder of the kinds turned away
    skipped_runs: dict  # kind -> the id of its skipped run


def _start(engine: Engine, locks: SyncLocks, corp_num: str, kinds: list[str], codes: Codes | None) -> _Started:
    """_start_into, whose leases are released when what follows the start statement fails."""
    started = _Started(0, None, {}, {}, {})
    try:
        return _start_into(started, engine, locks, corp_num, kinds, codes)
    except BaseException:
        if started.states:  # taken, and no sync will close them
            locks.release_rows(started.member_id, list(started.states))
        raise


def _start_into(started: _Started, engine: Engine, locks: SyncLocks, corp_num: str, kinds: list[str],
                codes: Codes | None) -> _Started:  # fmt: skip
    """START: the member found, the leases taken, a dead process's runs abandoned, ours
    recorded, where each kind stands read, in one transaction. A lease START could not take
    (held by a live session, this process's included, or its row locked) goes to the lock
    connection, which waits out a row lock briefly and names the holder, or takes the lease
    if it has come free (then START records that kind's run)."""
    given = (None, None)
    if codes is not None:
        given = (tuple(sorted(codes.settle_pending)), tuple(sorted(codes.refund_pending)))
    to_take = list(kinds)
    for attempt in range(3):
        rows = _starter(engine, locks).submit((corp_num, tuple(to_take), given), key=corp_num, group=given)
        if not rows:
            raise MemberError(f"CorpNum: {corp_num} is not a member")
        started.member_id, started.user_id = rows[0].member_id, rows[0].user_id
        for row in rows:
            if row.run_id is not None:
                oldest = row.oldest_pending.astimezone(KST).date() if row.oldest_pending else None
                started.states[row.kind] = (row.run_id, row.high_water, row.last_full_pass_at, oldest, row.repairs_due)
        missed = [row.kind for row in rows if row.run_id is None]
        if not missed:
            break
        # Named by the lock connection (which waits out a row lock briefly); a lease it finds
        # free by now, and takes, is handed back for START to take in its transaction.
        holders = locks.acquire(started.member_id, missed)
        started.holders.update({kind: holder for kind, holder in holders.items() if holder is not None})
        to_take = [kind for kind, holder in holders.items() if holder is None]
        locks.release(started.member_id, to_take)
        if not to_take:
            break
        if attempt == 2:
            started.holders.update({kind: Holder(None, None, None) for kind in to_take})
    if started.holders:
        with engine.connect() as conn:
            sql.durable_commits(conn)
            params = {"m": started.member_id, "kinds": list(started.holders),
                      "errors": [h.describe() for h in started.holders.values()]}  # fmt: skip
            started.skipped_runs = {r.kind: r.id for r in conn.execute(sql.SKIPPED, params)}
            sql.commit_durable(conn)
    return started


_starters: weakref.WeakKeyDictionary[Engine, Combiner] = weakref.WeakKeyDictionary()
_starters_guard = threading.Lock()


def _starter(engine: Engine, locks: SyncLocks) -> Combiner:
    """The process's START batches for this engine (ledger/sync/batches.py)."""
    with _starters_guard:
        starter = _starters.get(engine)
        if starter is None:
            # weakref: the registry's value must not keep its key (the engine) alive
            starter = _starters[engine] = Combiner(partial(_start_many, weakref.ref(engine), locks), limit=START_BATCH)
        return starter


START_BATCH = 64  # members a START statement takes at most


def _start_many(engine_ref: weakref.ref, locks: SyncLocks, requests: list[tuple]) -> list[list]:
    """START for these (CorpNum, kinds, pending codes) requests (the codes alike), in one
    transaction once the lock connection's session its leases name is known alive: each
    request's rows (none: not a member)."""
    engine = engine_ref()  # alive: the requesters hold it
    params = {"ns": [], "corps": [], "kinds": []}
    settle, refund = requests[0][2]
    for n, (corp, kinds, _) in enumerate(requests):
        for kind in kinds:
            params["ns"].append(n)
            params["corps"].append(corp)
            params["kinds"].append(kind)
    for _ in range(2):
        with borrowed(engine) as db:
            sql.driver_durable_commits(db)
            db.execute(sql.GENERIC_PLAN)
            rows = db.execute(sql.START, {**params, **locks.identity(), "settle": settle and list(settle),
                                          "refund": refund and list(refund),
                                          "repair_attempts": repair.MAX_FETCH_ATTEMPTS})  # fmt: skip
            sql.driver_commit_durable(db)
        if not rows or rows[0].alive:
            by_request: list[list] = [[] for _ in requests]
            for row in rows:
                by_request[row.n].append(row)
            return by_request
        locks.reopen()  # the lock connection was cut: a lease naming it would be free to others
    raise DBAPIError("START", None, Exception("the sync-lock connection could not be reopened"))


def _run(job: Job) -> None:
    result = job.result
    try:
        check(job.member.stop)  # a kind not begun when a stop was asked for is not begun
        (walk_dated if job.history.dated else walk_newest_first)(job)
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


def _mark_repairs(job: Job) -> None:
    """Once the close committed the kind's last page: the repair windows it took, each marked
    fetched with the rows it brought. Not the sync's failure if this fails: an unmarked window
    is taken again by the next sync (a bounded number of times, ledger/sync/repair.py)."""
    try:
        repair.finish(job)
    except Exception:
        log.exception("%s %s: the repair windows fetched could not be marked; the next sync takes them again",
                      job.member.corp_num, job.kind)  # fmt: skip


def _finish(member: MemberRun, jobs: list[Job], locks: SyncLocks) -> None:
    """FINISH, batched with the other syncs of the process closing meanwhile."""
    failure = _finisher(member.engine, locks).submit((member, jobs), key=member.member_id)
    if failure is not None:
        raise failure


_finishers: weakref.WeakKeyDictionary[Engine, Combiner] = weakref.WeakKeyDictionary()


def _finisher(engine: Engine, locks: SyncLocks) -> Combiner:
    with _starters_guard:
        finisher = _finishers.get(engine)
        if finisher is None:
            finisher = _finishers[engine] = Combiner(partial(_finish_many, locks), limit=START_BATCH)
        return finisher


def _finish_many(locks: SyncLocks, requests: list[tuple[MemberRun, list[Job]]]) -> list:
    """One transaction for these members' closes: their small last pages held back, every
    run's outcome, the leases released, the deferred advance of pages without rows. A row
    the database refuses undoes the batch; each member is then closed alone, where only the
    kind whose rows were refused fails. Each request's outcome: None, or the error it raises."""
    engine, seen_at, me, counts = requests[0][0].engine, dt.datetime.now(dt.UTC), locks.identity(), {}
    try:
        with borrowed(engine) as db:
            sql.driver_durable_commits(db)
            counts = {}
            for member, jobs in requests:
                for job in jobs:
                    if job.held is not None and job.result.status == "succeeded":
                        counts[id(job)] = job.held.write(db, member.member_id, seen_at)
            db.execute(sql.FINISH, _finish_params(requests, me, counts))
            sql.driver_commit_durable(db)
    except DBAPIError as exc:
        if is_transient(exc):
            raise
        outcomes = []
        for member, jobs in requests:
            try:
                _finish_alone(member, jobs, me, seen_at)
                outcomes.append(None)
            except DBAPIError as alone:
                outcomes.append(alone)
        return outcomes
    else:
        for _, jobs in requests:
            for job in jobs:
                if id(job) in counts:
                    job.result.add(counts[id(job)])
    return [None] * len(requests)


def _finish_alone(member: MemberRun, jobs: list[Job], me: dict, seen_at: dt.datetime) -> None:
    """One member's close: its held pages, then FINISH; a held page the database refuses fails its kind alone."""
    with borrowed(member.engine) as db:
        sql.driver_durable_commits(db)
        counts = {}
        try:
            for job in jobs:
                if job.held is not None and job.result.status == "succeeded":
                    counts[id(job)] = job.held.write(db, member.member_id, seen_at)
        except DBAPIError as exc:
            if is_transient(exc):
                raise
            db.rollback()
            sql.driver_durable_commits(db)
            counts = _write_held_alone(member, jobs, seen_at)
        for job in jobs:
            if id(job) in counts:
                job.result.add(counts[id(job)])
        db.execute(sql.FINISH, _finish_params([(member, jobs)], me, {}))
        sql.driver_commit_durable(db)


def _write_held_alone(member: MemberRun, jobs: list[Job], seen_at: dt.datetime) -> dict:
    """Each held page in its own transaction, so the one the database refuses fails alone."""
    counts = {}
    for job in jobs:
        if job.held is None or job.result.status != "succeeded":
            continue
        try:
            with borrowed(member.engine) as db:
                counts[id(job)] = job.held.write(db, member.member_id, seen_at)
                db.commit()
        except DBAPIError as exc:
            if is_transient(exc):
                raise
            job.result.status, job.result.error = "failed", _describe(exc)
            log.exception("sync of %s %s failed", member.corp_num, job.kind)
    return counts


def _finish_params(requests: list[tuple[MemberRun, list[Job]]], me: dict, counts: dict) -> dict:
    """FINISH's parameters; counts: the held pages' counts by id(job), not yet in the results."""
    runs: dict[str, list] = {column: [] for column in sql.RUN_COLUMNS}
    advances = []
    for member, jobs in requests:
        for job in jobs:
            r, held = job.result, counts.get(id(job), WriteCounts())
            for column, value in zip(runs.values(), (r.run_id, r.status, r.error, r.pages, r.api_calls,
                                                     r.inserted + held.inserted, r.updated + held.updated,
                                                     r.unchanged + held.unchanged), strict=True):  # fmt: skip
                column.append(value)
            advance = job.deferred.pending  # kept: a batch that fails is closed again member by member
            if r.status == "failed":
                advance = Advance()  # as if the failed run's unwritten pages were never fetched
            advances.append((member.member_id, job.kind, dataclasses.replace(advance, succeeded=r.status == "succeeded")))
    return {**runs, **advance_params(advances, durable=True), **me}


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
    keep: bool = True,
    **kwargs,
) -> list[SyncResult]:
    """Every active member (or the named ones) and kind; one failure never stops the rest.

    With jobs > 1, that many members are synced at once. A sync holds a database connection
    only while it writes, so jobs can be far more than the pool's connections: most of a
    member's time is spent waiting on Popbill (POPBILL_MAX_CONCURRENCY bounds the calls).
    keep=False returns nothing: each result goes to on_result only, so memory stays flat
    however many members (ledger/sync/tally.py keeps what a large sync shows).
    """
    members = members_to_sync(engine, corp_nums)
    kept: list[list[SyncResult]] = [[] for _ in members] if keep else []

    def one(n: int, corp_num: str) -> None:
        if kwargs.get("stop") is not None and kwargs["stop"].is_set():
            results = [SyncResult(corp_num, kind, status="not started") for kind in kinds]
        else:
            results = sync(engine, client, corp_num, kinds, **kwargs)
            if on_result:
                for result in results:
                    on_result(result)
        if keep:
            kept[n] = results

    # Members are handed out one at a time to `jobs` threads (never queued all at once: at
    # 100,000 members a future each weighed more than the syncs themselves).
    queue = iter(enumerate(members))
    guard = threading.Lock()

    def work() -> None:
        while True:
            with guard:
                item = next(queue, None)
            if item is None:
                return
            one(*item)

    if jobs <= 1:
        work()
    else:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sync") as pool:
            for future in [pool.submit(work) for _ in range(min(jobs, len(members)))]:
                future.result()
    return [result for batch in kept for result in batch]
