"""sync_member: page one member's history of one kind into the ledger.

The same plain function serves the CLI and the Celery task. Each page's rows and the advance
of the sync state commit together, so a crash anywhere loses nothing: the next run starts
again a lookback before the high-water mark, and identity keys make the rewrite a no-op.
A row lock no reader can take keeps two syncs of one (member, kind) apart (sync/lock.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from ledger.db.transient import is_transient
from ledger.history import identity, quarantine
from ledger.history.codes import load_codes
from ledger.history.models import Payment, Refund
from ledger.history.screening import RowLimits, screen_row
from ledger.history.writer import (
    PAYMENTS,
    REFUNDS,
    WriteCounts,
    prepare_usage_copy,
    write_mutable_page,
    write_usage_copy,
)
from ledger.kst import KST
from ledger.members.models import Member
from ledger.members.service import MemberError
from ledger.popbill import PopbillClient
from ledger.popbill.codes import Codes
from ledger.popbill.errors import PagingError, PopbillError
from ledger.popbill.models import Page, PaymentHistory, RefundHistory, UseHistory
from ledger.popbill.prefetch import prefetch
from ledger.popbill.retry import should_retry
from ledger.sync.interrupt import SyncInterrupted, check
from ledger.sync.lock import sync_lock
from ledger.sync.models import KINDS, SyncRun, SyncState
from ledger.sync.windows import SyncOptions, first_day, windows

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SyncResult:
    corp_num: str
    kind: str
    status: str = "running"
    pages: int = 0
    api_calls: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0  # rows refused by ledger.history.screening, kept in quarantined_rows
    error: str | None = None
    run_id: int | None = None
    db_seconds: float = 0.0  # writing and committing pages, for benchmarks
    retryable: bool = False  # the failure was transient (network, 5xx, 429): worth another try
    locked_by_other: bool = False  # skipped for a lock held by something that is not a sync
    database_lost: bool = False  # failed because the database went away (worth a retry soon)
    # Where the run stands, for progress displays: date windows walked, and the page just
    # written of its window as (pageNum, pageCount).
    windows: int = 1
    windows_done: int = 0
    window_page: tuple[int, int] = (0, 0)

    def add(self, counts: WriteCounts) -> None:
        self.inserted += counts.inserted
        self.updated += counts.updated
        self.unchanged += counts.unchanged

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged


Progress = Callable[[SyncResult], None]


@dataclasses.dataclass
class _Job:
    conn: Connection
    client: PopbillClient
    member_id: int
    corp_num: str
    user_id: str | None
    kind: str
    today: dt.date
    since: dt.date | None
    options: SyncOptions
    codes: Codes
    result: SyncResult
    progress: Progress | None
    full: bool
    stop: threading.Event | None = None  # set on Ctrl-C/SIGTERM: stop between pages

    def write(self, write_page, *args, **kwargs) -> WriteCounts:
        started = time.perf_counter()
        counts = write_page(self.conn, *args, **kwargs)
        self.result.db_seconds += time.perf_counter() - started
        return counts

    def page_written(self, counts: WriteCounts, refused: list | tuple = (), **state) -> None:
        """Quarantine the page's refused rows and advance the sync state in the page's
        transaction, then commit all three."""
        started = time.perf_counter()
        self.result.pages += 1
        self.result.add(counts)
        if refused:
            quarantine.keep(self.conn, self.member_id, self.kind, refused, dt.datetime.now(dt.UTC))
            self.result.quarantined += len(refused)
            log.warning("%s %s: %d rows quarantined, e.g. %s", self.corp_num, self.kind, len(refused), refused[0][1])
        self.conn.execute(
            update(SyncState)
            .where(SyncState.member_id == self.member_id, SyncState.kind == self.kind)
            .values(pages_done=SyncState.pages_done + 1, updated_at=func.now(), **state)
        )
        self.conn.commit()
        self.result.db_seconds += time.perf_counter() - started
        if self.progress:
            self.progress(self.result)
        check(self.stop)

    def state(self):
        return self.conn.execute(
            select(SyncState.high_water, SyncState.last_full_pass_at).where(
                SyncState.member_id == self.member_id, SyncState.kind == self.kind
            )
        ).one()


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
    result = SyncResult(corp_num, kind)
    with engine.connect() as conn:
        member = conn.execute(select(Member.id, Member.user_id).where(Member.corp_num == corp_num)).one_or_none()
        if member is None:
            raise MemberError(f"CorpNum: {corp_num} is not a member")
        # Rows and sync state are lost or kept together on a server crash, so the next run
        # redoes what was lost: safe to skip the flush wait on every page's commit.
        conn.execute(text("SET synchronous_commit = off"))
        conn.commit()
        with sync_lock(engine, member.id, kind) as holder:
            if holder is not None:
                result.status, result.error = "skipped", holder.describe()
                result.locked_by_other = not holder.is_sync
                result.run_id = _record_run(conn, member.id, kind, status="skipped", error=result.error)
                return result
            try:
                job = _Job(
                    conn, client, member.id, corp_num, member.user_id, kind, today or client.today(), since,
                    options or SyncOptions(), codes or load_codes(conn), result, progress, full, stop,
                )  # fmt: skip
                _run(job)
            finally:
                try:
                    conn.execute(text("RESET synchronous_commit"))
                    conn.commit()
                except Exception:  # the connection broke; the pool will discard it
                    log.warning("could not reset the sync connection of %s %s", corp_num, kind)
    return result


def _record_run(conn: Connection, member_id: int, kind: str, **values) -> int:
    run_id = conn.execute(
        insert(SyncRun).values(member_id=member_id, kind=kind, finished_at=func.now(), **values).returning(SyncRun.id)
    ).scalar_one()
    conn.commit()
    return run_id


def _run(job: _Job) -> None:
    conn, result = job.conn, job.result
    conn.execute(
        update(SyncRun)
        .where(SyncRun.member_id == job.member_id, SyncRun.kind == job.kind, SyncRun.status == "running")
        .values(status="abandoned", finished_at=func.now(), error="the process running it stopped")
    )
    conn.execute(
        text("INSERT INTO sync_states (member_id, kind) VALUES (:m, :k) ON CONFLICT DO NOTHING"),
        {"m": job.member_id, "k": job.kind},
    )
    # The run's record must outlive a server crash (pages may not: they are redone).
    conn.execute(text("SET LOCAL synchronous_commit = on"))
    result.run_id = conn.execute(
        insert(SyncRun).values(member_id=job.member_id, kind=job.kind).returning(SyncRun.id)
    ).scalar_one()
    conn.commit()
    if job.progress:
        job.progress(result)  # started: a run id to show (and to close if the process must stop)
    try:
        check(job.stop)
        if job.kind == "refunds":
            _sync_refunds(job)
        else:
            _sync_dated(job)
        result.status = "succeeded"
    except SyncInterrupted as exc:
        conn.rollback()  # only a page not yet committed, if any
        result.status, result.error = "interrupted", str(exc)
    except Exception as exc:
        conn.rollback()
        result.status, result.error = "failed", _describe(exc)
        result.database_lost = is_transient(exc)
        result.retryable = result.database_lost or should_retry(exc, idempotent=True)
        if not isinstance(exc, (PopbillError, MemberError)):
            log.exception("sync of %s %s failed", job.corp_num, job.kind)
    finished = {"status": result.status, "finished_at": func.now(), "error": result.error}
    conn.execute(
        update(SyncRun)
        .where(SyncRun.id == result.run_id)
        .values(
            pages=result.pages, api_calls=result.api_calls, rows_inserted=result.inserted,
            rows_updated=result.updated, rows_unchanged=result.unchanged, **finished,
        )
    )  # fmt: skip
    conn.execute(text("SET LOCAL synchronous_commit = on"))
    if result.status == "succeeded":
        conn.execute(
            update(SyncState)
            .where(SyncState.member_id == job.member_id, SyncState.kind == job.kind)
            .values(last_success_at=func.now())
        )
    conn.commit()


_ROW_TYPES = {"usage": UseHistory, "payments": PaymentHistory, "refunds": RefundHistory}


def _screened(job: _Job, page: Page, limits: RowLimits) -> tuple[Page, list[tuple[object, str]]]:
    """The page with its rows typed, less the rows screening refuses, and those (row, reason).
    The one place wire rows are checked before they can become ledger data."""
    row_type, kind = _ROW_TYPES[job.kind], job.kind
    kept, refused = [], []
    for row in page.items:
        reason = screen_row(kind, row, limits)
        if reason is None:
            kept.append(row_type.from_wire(row))
        else:
            refused.append((row, reason))
    return dataclasses.replace(page, items=tuple(kept)), refused


def _pages(job: _Job, fetch: Callable[[], Iterator[Page]]) -> Iterator[tuple[Page, list, identity.OccurrenceCounter]]:
    """Every page of fetch(), one API call a page, screened, with the occurrence counter for
    its rows and the rows screening refused. Pages that moved while paging (PagingError) are
    fetched again from the first with a fresh count; what was already written is then
    written again as unchanged rows."""
    limits = RowLimits.for_sync(job.client.settings, job.today)
    for attempt in range(1, job.options.paging_restarts + 1):
        counter = identity.OccurrenceCounter()  # exact repeats are numbered per fetch of a window
        try:
            for page in fetch(typed=False):
                job.result.api_calls += 1
                page, refused = _screened(job, page, limits)
                check(job.stop)  # a page fetched after a stop was asked for is not written
                yield page, refused, counter
            return
        except PagingError:
            job.result.api_calls += 1
            if attempt == job.options.paging_restarts:
                raise
            log.info("pages of %s %s moved; fetching them again", job.corp_num, job.kind)


@dataclasses.dataclass(frozen=True)
class _Fetched:
    payload: object  # what the writer takes: COPY text for usage, (rows, counter) for payments
    is_last: bool  # the last page of its window
    window: tuple[dt.date, dt.date]
    refused: list  # (row, reason) for the quarantine
    page_of: tuple[int, int] = (0, 0)  # (pageNum, pageCount) in its window


def _fetch_windows(job: _Job, spans: list[tuple[dt.date, dt.date]]) -> Iterator[_Fetched]:
    """Every page of every window in order, prepared for writing (in the prefetch thread)."""
    client, corp, opts = job.client, job.corp_num, job.options
    for window in spans:
        if job.kind == "usage":
            fetch = partial(
                client.iter_use_history, corp, *window, per_page=opts.per_page, order="A", user_id=job.user_id
            )
        else:
            fetch = partial(client.iter_payment_history, corp, *window, per_page=opts.per_page, user_id=job.user_id)
        for page, refused, counter in _pages(job, fetch):
            if job.kind == "usage":
                payload = prepare_usage_copy(job.member_id, page.items, counter)
            else:
                payload = (page.items, counter)
            yield _Fetched(payload, page.is_last, window, refused, (page.page_num, page.page_count))


def _oldest_pending(job: _Job, model, when_column, state_column, pending) -> dt.date | None:
    oldest = job.conn.execute(
        select(func.min(when_column)).where(model.member_id == job.member_id, state_column.in_(sorted(pending)))
    ).scalar()
    return oldest.astimezone(KST).date() if oldest else None


def _sync_dated(job: _Job) -> None:
    """Usage and payments: windows from a lookback before the high-water mark up to today,
    the next page always fetched and prepared while this one is written."""
    high_water = job.state().high_water
    start = first_day(high_water, job.today, job.options, job.since)
    if job.kind == "payments":
        # A deposit pending since before the lookback must still be seen when it completes.
        pending = _oldest_pending(job, Payment, Payment.reg_dt, Payment.settle_state, job.codes.settle_pending)
        if pending and pending < start:
            start = pending
    spans = windows(start, job.today, job.options.window_days)
    job.result.windows = len(spans)
    for fetched in prefetch(_fetch_windows(job, spans)):
        job.result.window_page = fetched.page_of
        job.result.windows_done += fetched.is_last
        seen_at = dt.datetime.now(dt.UTC)
        window_start, window_end = fetched.window
        if job.kind == "usage":
            beyond_the_mark = high_water is None or window_start > high_water
            counts = job.write(write_usage_copy, fetched.payload, seen_at, likely_new=beyond_the_mark)
        else:
            rows, counter = fetched.payload
            counts = job.write(write_mutable_page, PAYMENTS, job.member_id, rows, counter, seen_at)
        state = {"window_start": window_start, "window_end": window_end}
        if fetched.is_last:
            state["high_water"] = func.greatest(func.coalesce(SyncState.high_water, window_end), window_end)
        job.page_written(counts, fetched.refused, **state)


def _sync_refunds(job: _Job) -> None:
    """No date filter: newest first until a whole page is known and unchanged (and older than
    any refund still pending), with a full pass now and then."""
    state = job.state()
    now = dt.datetime.now(dt.UTC)
    full = (
        job.full
        or state.last_full_pass_at is None
        or (now - state.last_full_pass_at > dt.timedelta(days=job.options.refund_full_pass_days))
    )
    pending = _oldest_pending(job, Refund, Refund.req_dt, Refund.state, job.codes.refund_pending)

    fetch = partial(job.client.iter_refund_history, job.corp_num, per_page=job.options.per_page, user_id=job.user_id)
    for page, refused, counter in _pages(job, fetch):
        job.result.window_page = (page.page_num, page.page_count)
        counts = job.write(write_mutable_page, REFUNDS, job.member_id, page.items, counter, dt.datetime.now(dt.UTC))
        job.page_written(counts, refused, **({"last_full_pass_at": func.now()} if page.is_last else {}))
        oldest_here = min((r.req_dt.date() for r in page.items), default=None)
        past_pending = pending is None or (oldest_here is not None and oldest_here <= pending)
        if not full and counts.all_known and page.items and past_pending:
            break


def members_to_sync(engine: Engine, corp_nums: list[str] | None = None) -> list[str]:
    """The named members, or every active one."""
    with engine.connect() as conn:
        query = select(Member.corp_num).order_by(Member.corp_num)
        query = query.where(Member.corp_num.in_(corp_nums)) if corp_nums else query.where(Member.active.is_(True))
        return list(conn.scalars(query))


def sync_all(
    engine: Engine,
    client: PopbillClient,
    *,
    corp_nums: list[str] | None = None,
    kinds: tuple[str, ...] = KINDS,
    on_result: Callable[[SyncResult], None] | None = None,
    jobs: int = 1,
    sync: Callable[..., SyncResult] = sync_member,  # or one that retries (sync/resilient.py)
    **kwargs,
) -> list[SyncResult]:
    """Every active member (or the named ones) and kind; one failure never stops the rest.

    With jobs > 1, that many (member, kind) syncs run at once, each on its own connection:
    while one waits on the database the other parses, and PostgreSQL uses a second core.
    """
    work = [(corp, kind) for corp in members_to_sync(engine, corp_nums) for kind in kinds]

    def one(item: tuple[str, str]) -> SyncResult:
        if kwargs.get("stop") is not None and kwargs["stop"].is_set():
            return SyncResult(*item, status="not started")
        result = sync(engine, client, *item, **kwargs)
        if on_result:
            on_result(result)
        return result

    if jobs <= 1:
        return [one(item) for item in work]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sync") as pool:
        return list(pool.map(one, work))
