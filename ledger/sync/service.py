"""sync_member: page one member's history of one kind into the ledger.

The same plain functions serve the CLI and the Celery tasks. `sync_member_kinds` syncs
several kinds of one member with shared bookkeeping; `sync_member` is it for one kind.

Commit boundaries, so a crash anywhere loses nothing:
- start: one transaction records the runs (and abandons a dead process's) and reads the states;
- every page holding rows: its rows and the advance of the sync state commit together;
- pages with no rows change nothing but the state, so their advance waits for the next page
  with rows or for the closing transaction, which also finishes the runs (one transaction
  per member for a no-change re-sync). Losing such an advance only means fetching an empty
  window again.
A database connection is borrowed from the pool only for those transactions, never while
waiting on Popbill, so many members can be in flight on a few connections. The
leases (ledger.sync.locks), all of a process's on one connection of their own, keep two
syncs of one (member, kind) from running at once, and no read-only role can take them.
Every wire row is screened (ledger.history.screening) before it can become ledger data;
refused rows go to the quarantine in the transaction of their page.
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

from sqlalchemy import Connection, Engine, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Integer, String

from ledger.db.among import among
from ledger.db.transient import is_transient
from ledger.history import identity, quarantine
from ledger.history.screening import RowLimits, screen_row
from ledger.history.usage_page import screen_usage_copy
from ledger.history.writer import (
    PAYMENTS,
    REFUNDS,
    WriteCounts,
    write_mutable_page,
    write_usage_copy,
)
from ledger.kst import KST
from ledger.members.models import Member
from ledger.members.service import MemberError
from ledger.popbill import PopbillClient
from ledger.popbill.codes import Codes
from ledger.popbill.errors import PagingError, PopbillError
from ledger.popbill.models import Page, PaymentHistory, RefundHistory
from ledger.popbill.prefetch import prefetch_after
from ledger.popbill.retry import should_retry
from ledger.sync.interrupt import SyncInterrupted, check
from ledger.sync.locks import locks_for
from ledger.sync.models import KINDS
from ledger.sync.windows import SyncOptions, first_day, windows

__all__ = ["SyncResult", "members_to_sync", "sync_all", "sync_member", "sync_member_kinds"]

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
    locked_by_other: bool = False  # skipped for a lease or row lock held by something that is not a sync
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

_KINDS_PARAM = bindparam("kinds", type_=ARRAY(String))
# The run rows must outlive a server crash (pages need not: they are redone), whatever the
# server's or role's default. Set for the session, once per connection (a session SET also
# outranks a later reload of the server's configuration), so the start and the close of
# every sync need no statement of their own for it; a page's LOCAL 'off' ends with its
# transaction.
_SYNC_COMMIT = text("SET synchronous_commit = on")
_DURABLE = "ledger.sync.synchronous_commit_on"  # in Connection.info: the SET above was committed


def _durable_commits(conn: Connection) -> None:
    """Before the start or close transaction's first statement: see _SYNC_COMMIT."""
    if not conn.info.get(_DURABLE):
        conn.execute(_SYNC_COMMIT)


def _commit_durable(conn: Connection) -> None:
    conn.commit()
    conn.info[_DURABLE] = True  # only once committed: a rolled-back SET is undone


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


@dataclasses.dataclass
class _Job:
    """One kind of one member's sync: what it needs to fetch and where it stands."""

    member: _Member
    kind: str
    result: SyncResult
    high_water: dt.date | None = None
    last_full_pass_at: dt.datetime | None = None
    oldest_pending: dt.date | None = None
    limits: RowLimits | None = None  # what screening accepts, set at the start of the sync
    # State of pages with no rows, not committed yet (see the module docstring).
    deferred: dict = dataclasses.field(default_factory=dict)
    deferred_pages: int = 0

    def defer(self, **state) -> None:
        self.result.pages += 1
        self.deferred_pages += 1
        if "high_water" in state:
            state["high_water"] = max(state["high_water"], self.deferred.get("high_water", state["high_water"]))
        self.deferred.update(state)

    def take_deferred(self) -> tuple[dict, int]:
        state, pages = self.deferred, self.deferred_pages
        self.deferred, self.deferred_pages = {}, 0
        return state, pages


@dataclasses.dataclass
class _Member:
    engine: Engine
    client: PopbillClient
    member_id: int
    corp_num: str
    user_id: str | None
    today: dt.date
    since: dt.date | None
    options: SyncOptions
    progress: Progress | None
    full: bool
    stop: threading.Event | None = None  # set on Ctrl-C/SIGTERM: stop between pages


# A page's last statement, which also makes its commit asynchronous: rows and sync state
# are lost or kept together on a server crash, so the next run redoes what was lost, and
# page transactions need not wait for the WAL flush (LOCAL: only this transaction; a
# setting that takes effect at the commit, so it may come last, in the FROM list, where it
# costs no statement of its own).
_ADVANCE = text(
    """
    UPDATE sync_states SET
        pages_done = pages_done + :pages, updated_at = now(),
        window_start = coalesce(CAST(:window_start AS date), window_start),
        window_end = coalesce(CAST(:window_end AS date), window_end),
        high_water = CASE WHEN CAST(:high_water AS date) IS NULL THEN high_water
                          ELSE greatest(coalesce(high_water, :high_water), :high_water) END,
        last_full_pass_at = CASE WHEN :full_pass THEN now() ELSE last_full_pass_at END,
        last_success_at = CASE WHEN :succeeded THEN now() ELSE last_success_at END
    FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
    WHERE member_id = :member_id AND kind = :kind
    """
)


def _advance_params(job: _Job, state: dict, pages: int, *, succeeded: bool = False) -> dict:
    return {
        "member_id": job.member.member_id, "kind": job.kind, "pages": pages,
        "window_start": state.get("window_start"), "window_end": state.get("window_end"),
        "high_water": state.get("high_water"), "full_pass": bool(state.get("full_pass")), "succeeded": succeeded,
    }  # fmt: skip


def _write_page(job: _Job, write: Callable[[Connection], WriteCounts], refused: list, **state) -> WriteCounts:
    """Write one page holding rows (or refused rows), keep its refused rows in the quarantine
    and advance the state (with any deferred) in one transaction, on a connection borrowed
    for just that."""
    deferred, pages = job.take_deferred()
    if "high_water" in deferred and "high_water" in state:
        state["high_water"] = max(state["high_water"], deferred["high_water"])
    merged = {**deferred, **state}
    started = time.perf_counter()
    with job.member.engine.connect() as conn:
        counts = write(conn)
        if refused:
            quarantine.keep(conn, job.member.member_id, job.kind, refused, dt.datetime.now(dt.UTC))
        conn.execute(_ADVANCE, _advance_params(job, merged, pages + 1))
        conn.commit()
    job.result.db_seconds += time.perf_counter() - started
    job.result.pages += 1
    job.result.add(counts)
    if refused:
        job.result.quarantined += len(refused)
        log.warning("%s %s: %d rows quarantined, e.g. %s", job.member.corp_num, job.kind, len(refused), refused[0][1])
    if job.member.progress:
        job.member.progress(job.result)
    check(job.member.stop)  # the page is committed whole; stop here if asked to
    return counts


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
            row = conn.execute(_MEMBER, {"corp": corp_num}).one_or_none()
            if row is None:
                raise MemberError(f"CorpNum: {corp_num} is not a member")
            member = _Member(
                engine, client, row.id, corp_num, row.user_id, today, since,
                options or SyncOptions(), progress, full, stop,
            )  # fmt: skip
            holders = locks.acquire(member.member_id, list(kinds))
            limits = _row_limits(client.settings, member.today)
            jobs = [_Job(member, kind, SyncResult(corp_num, kind), limits=limits) for kind in kinds]
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


_MEMBER = text("SELECT id, user_id FROM members WHERE corp_num = :corp")  # text: nothing to build per member

_LIMITS: dict[dt.date, tuple[object, RowLimits]] = {}


def _row_limits(settings, today: dt.date) -> RowLimits:
    """RowLimits.for_sync, worked out once a day per settings rather than once per member."""
    cached = _LIMITS.get(today)
    if cached is None or cached[0] is not settings:
        if len(_LIMITS) > 8:
            _LIMITS.clear()
        cached = _LIMITS[today] = (settings, RowLimits.for_sync(settings, today))
    return cached[1]


# One statement for the whole start of a sync: a dead process's running rows become
# abandoned and ours are recorded; where each kind stands (new states from RETURNING,
# existing ones from the statement's snapshot, which does not see its own inserts; the
# leases rule out a racing insert); and the oldest payment and refund still pending, whose
# codes come from state_codes unless given (a subquery runs only for a kind being synced).
_START = text(
    """
    WITH abandoned AS (
        UPDATE sync_runs SET status = 'abandoned', finished_at = now(), error = 'the process running it stopped'
        WHERE member_id = :m AND kind = ANY(:kinds) AND status = 'running'
    ), runs AS (
        INSERT INTO sync_runs (member_id, kind) SELECT :m, unnest(:kinds) RETURNING id, kind
    ), created AS (
        INSERT INTO sync_states (member_id, kind) SELECT :m, unnest(:kinds)
        ON CONFLICT (member_id, kind) DO NOTHING RETURNING kind, high_water, last_full_pass_at
    ), states AS (
        SELECT * FROM created
        UNION ALL SELECT kind, high_water, last_full_pass_at FROM sync_states WHERE member_id = :m AND kind = ANY(:kinds)
    )
    SELECT runs.kind, runs.id, states.high_water, states.last_full_pass_at,
        CASE runs.kind
            WHEN 'payments' THEN (SELECT min(reg_dt) FROM payments WHERE member_id = :m AND settle_state = ANY(
                coalesce(:settle, ARRAY(SELECT code FROM state_codes WHERE kind = 'settle' AND meaning = 'pending'))))
            WHEN 'refunds' THEN (SELECT min(req_dt) FROM refunds WHERE member_id = :m AND state = ANY(
                coalesce(:refund, ARRAY(SELECT code FROM state_codes WHERE kind = 'refund' AND meaning = 'pending'))))
        END AS oldest_pending
    FROM runs JOIN states USING (kind)
    """
).bindparams(_KINDS_PARAM, bindparam("settle", type_=ARRAY(Integer)), bindparam("refund", type_=ARRAY(Integer)))

_SKIPPED = text(
    "INSERT INTO sync_runs (member_id, kind, status, finished_at, error) "
    "SELECT :m, k, 'skipped', now(), e FROM unnest(:kinds, :errors) AS t(k, e) RETURNING id, kind"
).bindparams(_KINDS_PARAM, bindparam("errors", type_=ARRAY(String)))


def _start(conn: Connection, running: list[_Job], skipped: list[_Job], codes: Codes | None) -> None:
    """One transaction: abandon a dead process's runs, record ours, read where each kind stands."""
    _durable_commits(conn)
    if running:
        m = running[0].member.member_id
        given = {"settle": None, "refund": None}
        if codes is not None:
            given = {"settle": sorted(codes.settle_pending), "refund": sorted(codes.refund_pending)}
        params = {"m": m, "kinds": [job.kind for job in running], **given}
        started = {r.kind: r for r in conn.execute(_START, params)}
        for job in running:
            row = started[job.kind]
            job.result.run_id = row.id
            job.high_water = row.high_water
            job.last_full_pass_at = row.last_full_pass_at
            job.oldest_pending = row.oldest_pending.astimezone(KST).date() if row.oldest_pending else None
    if skipped:
        m = skipped[0].member.member_id
        params = {"m": m, "kinds": [job.kind for job in skipped], "errors": [job.result.error for job in skipped]}
        ids = {r.kind: r.id for r in conn.execute(_SKIPPED, params)}
        for job in skipped:
            job.result.status, job.result.run_id = "skipped", ids[job.kind]
    _commit_durable(conn)


def _run(job: _Job) -> None:
    result = job.result
    try:
        check(job.member.stop)  # a kind not begun when a stop was asked for is not begun
        if job.kind == "refunds":
            _sync_refunds(job)
        else:
            _sync_dated(job)
        result.status = "succeeded"
    except SyncInterrupted as exc:
        result.status, result.error = "interrupted", str(exc)
    except Exception as exc:
        result.status, result.error = "failed", _describe(exc)
        result.database_lost = is_transient(exc)
        result.retryable = result.database_lost or should_retry(exc, idempotent=True)
        if not isinstance(exc, (PopbillError, MemberError)):
            log.exception("sync of %s %s failed", job.member.corp_num, job.kind)


# The close of a sync, one statement: every run's outcome, and every kind's state with the
# deferred advance of its empty pages (as _ADVANCE does for one kind).
_FINISH = text(
    """
    WITH runs AS (
        UPDATE sync_runs r SET status = t.status, error = t.error, finished_at = now(), pages = t.pages,
            api_calls = t.api_calls, rows_inserted = t.inserted, rows_updated = t.updated, rows_unchanged = t.unchanged
        FROM unnest(CAST(:ids AS int[]), CAST(:statuses AS text[]), CAST(:errors AS text[]), CAST(:run_pages AS int[]),
                    CAST(:api_calls AS int[]), CAST(:inserted AS int[]), CAST(:updated AS int[]),
                    CAST(:unchanged AS int[]))
            AS t(id, status, error, pages, api_calls, inserted, updated, unchanged)
        WHERE r.id = t.id
    )
    UPDATE sync_states s SET
        pages_done = s.pages_done + t.pages, updated_at = now(),
        window_start = coalesce(t.window_start, s.window_start),
        window_end = coalesce(t.window_end, s.window_end),
        high_water = CASE WHEN t.high_water IS NULL THEN s.high_water
                          ELSE greatest(coalesce(s.high_water, t.high_water), t.high_water) END,
        last_full_pass_at = CASE WHEN t.full_pass THEN now() ELSE s.last_full_pass_at END,
        last_success_at = CASE WHEN t.succeeded THEN now() ELSE s.last_success_at END
    FROM unnest(CAST(:kinds AS text[]), CAST(:pages AS int[]), CAST(:window_starts AS date[]),
                CAST(:window_ends AS date[]), CAST(:high_waters AS date[]), CAST(:full_passes AS boolean[]),
                CAST(:succeeded AS boolean[]))
        AS t(kind, pages, window_start, window_end, high_water, full_pass, succeeded)
    WHERE s.member_id = :m AND s.kind = t.kind
    """
)


def _finish(member: _Member, jobs: list[_Job]) -> None:
    """One transaction: the deferred state of empty pages, and every run's outcome."""
    runs: dict[str, list] = {k: [] for k in ("ids", "statuses", "errors", "run_pages", "api_calls", "inserted",
                                             "updated", "unchanged")}  # fmt: skip
    states: dict[str, list] = {k: [] for k in ("kinds", "pages", "window_starts", "window_ends", "high_waters",
                                               "full_passes", "succeeded")}  # fmt: skip
    for job in jobs:
        r = job.result
        for name, value in zip(runs, (r.run_id, r.status, r.error, r.pages, r.api_calls, r.inserted, r.updated,
                                      r.unchanged), strict=True):  # fmt: skip
            runs[name].append(value)
        deferred, pages = job.take_deferred()
        if r.status == "failed":
            deferred, pages = {}, 0  # as if the failed run's unwritten pages were never fetched
        for name, value in zip(states, (job.kind, pages, deferred.get("window_start"), deferred.get("window_end"),
                                        deferred.get("high_water"), bool(deferred.get("full_pass")),
                                        r.status == "succeeded"), strict=True):  # fmt: skip
            states[name].append(value)
    with member.engine.connect() as conn:
        _durable_commits(conn)
        conn.execute(_FINISH, {"m": member.member_id, **runs, **states})
        _commit_durable(conn)


_ROW_TYPES = {"payments": PaymentHistory, "refunds": RefundHistory}


def _screened(job: _Job, page: Page) -> tuple[Page, list[tuple[object, str]]]:
    """The page with its rows typed, less the rows screening refuses, and those (row, reason).
    The one place wire rows are checked before they can become ledger data; usage rows are
    checked by the same rules as each becomes its COPY line, in _prepare."""
    if job.kind == "usage":
        return page, []
    row_type, kind, limits = _ROW_TYPES[job.kind], job.kind, job.limits
    kept, refused = [], []
    for row in page.items:
        reason = screen_row(kind, row, limits)
        if reason is None:
            kept.append(row_type.from_wire(row))
        else:
            refused.append((row, reason))
    return dataclasses.replace(page, items=tuple(kept)), refused


def _pages(
    job: _Job, fetch: Callable[..., Iterator[Page]], *, ahead: bool = False
) -> Iterator[tuple[Page, list, identity.OccurrenceCounter]]:
    """Every page of fetch(), one API call a page, screened, with the rows screening refused
    and the occurrence counter for its rows. Pages that moved while paging (PagingError) are
    fetched again from the first with a fresh count; what was already written is then
    written again as unchanged rows. ahead (a caller that reads every page): after the first
    page, the next is fetched and decoded in another thread while this one is screened."""
    restarts = job.member.options.paging_restarts
    for attempt in range(1, restarts + 1):
        counter = identity.OccurrenceCounter()  # exact repeats are numbered per fetch of a window
        pages = fetch(typed=False)
        try:
            for page in prefetch_after(pages, lambda p: p.is_last) if ahead else pages:
                job.result.api_calls += 1
                screened, refused = _screened(job, page)
                check(job.member.stop)  # a page fetched after a stop was asked for is not written
                yield screened, refused, counter
            return
        except PagingError:
            job.result.api_calls += 1
            if attempt == restarts:
                raise
            log.info("pages of %s %s moved; fetching them again", job.member.corp_num, job.kind)


@dataclasses.dataclass(frozen=True)
class _Fetched:
    payload: object  # what the writer takes: COPY bytes for usage, (rows, counter) for payments; None: no rows
    is_last: bool  # the last page of its window
    window: tuple[dt.date, dt.date]
    final: bool  # the last page of the last window
    refused: list  # (row, reason) screening refused, for the quarantine
    page_of: tuple[int, int] = (0, 0)  # (pageNum, pageCount) in its window


def _prepare(job: _Job, page: Page, counter: identity.OccurrenceCounter, refused: list) -> tuple[object | None, list]:
    """The one place every screened row of every kind passes before it is written (for dated
    kinds this runs in the prefetch thread, so the work overlaps the write of the page
    before), with the rows refused. None: no row on the page to write."""
    rows = page.items
    if not rows:
        return None, refused
    if job.kind == "usage":
        copy = screen_usage_copy(job.member.member_id, rows, counter, job.limits)
        return (copy.data if copy.rows else None), refused + copy.refused
    return (rows, counter), refused


def _fetch_windows(job: _Job, spans: list[tuple[dt.date, dt.date]]) -> Iterator[_Fetched]:
    """Every page of every window in order, prepared for writing."""
    m = job.member
    client, corp, opts = m.client, m.corp_num, m.options
    for n, window in enumerate(spans):
        if job.kind == "usage":
            fetch = partial(
                client.iter_use_history, corp, *window, per_page=opts.per_page, order="A", user_id=m.user_id
            )
        else:
            fetch = partial(client.iter_payment_history, corp, *window, per_page=opts.per_page, user_id=m.user_id)
        for page, refused, counter in _pages(job, fetch, ahead=True):
            final = page.is_last and n == len(spans) - 1
            page_of = (page.page_num, page.page_count)
            payload, refused = _prepare(job, page, counter, refused)
            yield _Fetched(payload, page.is_last, window, final, refused, page_of)


def _nothing(conn: Connection) -> WriteCounts:
    """The write of a page whose rows screening all refused."""
    return WriteCounts()


def _sync_dated(job: _Job) -> None:
    """Usage and payments: windows from a lookback before the high-water mark up to today.
    A one-page sync (the nightly norm) runs in this thread; longer ones fetch and prepare the
    next page in another while this one is written."""
    m = job.member
    high_water = job.high_water
    start = first_day(high_water, m.today, m.options, m.since)
    if job.kind == "payments" and job.oldest_pending and job.oldest_pending < start:
        # A deposit pending since before the lookback must still be seen when it completes.
        start = job.oldest_pending
    spans = windows(start, m.today, m.options.window_days)
    job.result.windows = len(spans)
    for fetched in prefetch_after(_fetch_windows(job, spans), lambda f: f.final):
        job.result.window_page = fetched.page_of
        job.result.windows_done += fetched.is_last
        window_start, window_end = fetched.window
        state = {"window_start": window_start, "window_end": window_end}
        if fetched.is_last:
            state["high_water"] = window_end
        if fetched.payload is None and not fetched.refused:
            job.defer(**state)
            if m.progress:
                m.progress(job.result)
            check(m.stop)
            continue
        seen_at = dt.datetime.now(dt.UTC)
        if fetched.payload is None:  # every row refused: the page still commits, with its quarantine
            write = _nothing
        elif job.kind == "usage":
            beyond_the_mark = high_water is None or window_start > high_water
            write = partial(write_usage_copy, payload=fetched.payload, seen_at=seen_at, likely_new=beyond_the_mark)
        else:
            rows, counter = fetched.payload
            write = partial(
                write_mutable_page, spec=PAYMENTS, member_id=m.member_id, rows=rows, counter=counter, seen_at=seen_at
            )
        _write_page(job, write, fetched.refused, **state)


def _sync_refunds(job: _Job) -> None:
    """No date filter: newest first until a whole page is known and unchanged (and older than
    any refund still pending), with a full pass now and then."""
    m = job.member
    now = dt.datetime.now(dt.UTC)
    full = (
        m.full
        or job.last_full_pass_at is None
        or (now - job.last_full_pass_at > dt.timedelta(days=m.options.refund_full_pass_days))
    )
    pending = job.oldest_pending
    fetch = partial(m.client.iter_refund_history, m.corp_num, per_page=m.options.per_page, user_id=m.user_id)
    for page, refused, counter in _pages(job, fetch):
        job.result.window_page = (page.page_num, page.page_count)
        state = {"full_pass": True} if page.is_last else {}
        payload, refused = _prepare(job, page, counter, refused)
        if payload is None and not refused:
            job.defer(**state)
            continue
        if payload is None:  # every row refused: the page still commits, with its quarantine
            rows, write = (), _nothing
        else:
            rows, counter = payload
            write = partial(
                write_mutable_page, spec=REFUNDS, member_id=m.member_id, rows=rows, counter=counter,
                seen_at=dt.datetime.now(dt.UTC),
            )  # fmt: skip
        counts = _write_page(job, write, refused, **state)
        oldest_here = min((r.req_dt.date() for r in rows), default=None)
        past_pending = pending is None or (oldest_here is not None and oldest_here <= pending)
        if not full and counts.all_known and rows and past_pending:
            break


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
