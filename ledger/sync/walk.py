"""Walking one kind's pages into the ledger: by date windows (usage, payments) or newest first
(refunds). Every wire row is screened (ledger.history.screening) before it can become ledger
data; refused rows go to the quarantine in the transaction of their page. A database
connection is borrowed from the pool only to write a page, never while waiting on Popbill.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator

from ledger.history import identity, quarantine
from ledger.history.screening import screen_row
from ledger.history.small_pages import SMALL_PAGE_ROWS
from ledger.history.writer import WriteCounts
from ledger.popbill.errors import PagingError
from ledger.popbill.models import Page
from ledger.popbill.prefetch import prefetch_after
from ledger.sync import repair, sql
from ledger.sync.deferred import Advance, advance_params
from ledger.sync.interrupt import check
from ledger.sync.job import Job
from ledger.sync.kinds import Write, nothing
from ledger.sync.windows import first_day, windows

log = logging.getLogger(__name__)


def _screened(job: Job, page: Page) -> tuple[Page, list[tuple[object, str]]]:
    """The page with its rows typed, less the rows screening refuses, and those (row, reason):
    where wire rows are checked before they can become ledger data (usage rows are checked by
    the same rules as each becomes its COPY line, in the kind's prepare)."""
    if job.history.screened_in_prepare:
        return page, []
    row_type, kind, limits = job.history.row_type, job.kind, job.limits
    kept, refused = [], []
    for row in page.items:
        reason = screen_row(kind, row, limits)
        if reason is None:
            kept.append(row_type.from_wire(row))
        else:
            refused.append((row, reason))
    return dataclasses.replace(page, items=tuple(kept)), refused


def pages(
    job: Job, fetch: Callable[..., Iterator[Page]], *, ahead: bool = False
) -> Iterator[tuple[Page, list, identity.OccurrenceCounter]]:
    """Every page of fetch(), one API call a page, screened, with the rows screening refused
    and the occurrence counter for its rows. Pages that moved while paging (PagingError) are
    fetched again from the first with a fresh count; what was already written is then
    written again as unchanged rows. ahead (a caller that reads every page): after the first
    page, the next is fetched and decoded in another thread while this one is screened."""
    restarts = job.member.options.paging_restarts
    for attempt in range(1, restarts + 1):
        counter = identity.OccurrenceCounter()  # exact repeats are numbered per fetch of a window
        fetched = fetch(typed=False)
        try:
            for page in prefetch_after(fetched, lambda p: p.is_last) if ahead else fetched:
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


def defer(job: Job, advance: Advance) -> None:
    """A page with no rows: its advance waits for the next page with rows, or the close."""
    job.result.pages += 1
    job.deferred.add(dataclasses.replace(advance, pages=1))


def hold(job: Job, rows: object, advance: Advance) -> None:
    """A small last page (the nightly norm): its rows wait for the close, which writes them
    with the run's outcome and the state advance in one transaction. It is the walk's last
    page, so the run succeeds (a stop asked for now comes too late to matter); a close that
    cannot write the rows fails the run and advances nothing."""
    job.held = rows
    defer(job, advance)
    if job.member.progress:
        job.member.progress(job.result)


def _small_last(page: Page, refused: list, last: bool) -> bool:
    return last and not refused and 0 < len(page.items) <= SMALL_PAGE_ROWS


def write_page(job: Job, write: Write, refused: list, advance: Advance) -> WriteCounts:
    """Write one page holding rows (or refused rows), keep its refused rows in the quarantine
    and advance the state (with any deferred) in one transaction, on a connection borrowed
    for just that."""
    merged = job.deferred.take().merge(dataclasses.replace(advance, pages=1))
    member = job.member
    started = time.perf_counter()
    with member.engine.connect() as conn:
        counts = write(conn)
        if refused:
            quarantine.keep(conn, member.member_id, job.kind, refused, dt.datetime.now(dt.UTC))
        conn.execute(sql.ADVANCE_STATES, advance_params([(member.member_id, job.kind, merged)], durable=False))
        conn.commit()
    job.result.db_seconds += time.perf_counter() - started
    job.result.pages += 1
    job.result.add(counts)
    if refused:
        job.result.quarantined += len(refused)
        log.warning("%s %s: %d rows quarantined, e.g. %s", member.corp_num, job.kind, len(refused), refused[0][1])
    if member.progress:
        member.progress(job.result)
    check(member.stop)  # the page is committed whole; stop here if asked to
    return counts


@dataclasses.dataclass(frozen=True)
class _Fetched:
    payload: object  # what the kind's writer takes; None: no rows
    is_last: bool  # the last page of its window
    held: bool  # payload is a small last page's rows, for the close
    window: tuple[dt.date, dt.date]
    final: bool  # the last page of the last window
    refused: list  # (row, reason) screening refused, for the quarantine
    page_of: tuple[int, int] = (0, 0)  # (pageNum, pageCount) in its window


def _fetch_windows(job: Job, spans: list[tuple[dt.date, dt.date]]) -> Iterator[_Fetched]:
    """Every page of every window in order, prepared for writing (in the prefetch thread when
    a window has more than one page, so the work overlaps the write of the page before)."""
    history, how = job.history, job.member.fetch
    for n, window in enumerate(spans):
        for page, refused, counter in pages(job, history.fetch(how, window), ahead=True):
            final = page.is_last and n == len(spans) - 1
            payload, held = None, False
            if _small_last(page, refused, final):
                kept, refused_here = history.screen(page.items, job.limits)
                if not refused_here:  # every row passed: the close writes them, if they can wait for it
                    payload = history.hold(kept, counter, only_page=page.page_num == 1)
                    held = payload is not None
            if not held and page.items:
                payload, refused_here = history.prepare(job.member.member_id, page.items, counter, job.limits)
                refused = refused + refused_here
            yield _Fetched(payload, page.is_last, held, window, final, refused, (page.page_num, page.page_count))


def walk_dated(job: Job) -> None:
    """Usage and payments: windows from a lookback before the high-water mark up to today.
    A one-page sync (the nightly norm) runs in this thread; longer ones fetch and prepare the
    next page in another while this one is written."""
    m = job.member
    high_water = job.high_water
    start = first_day(high_water, m.today, m.options, m.since)
    if job.oldest_pending and job.oldest_pending < start:
        # A deposit pending since before the lookback must still be seen when it completes.
        start = job.oldest_pending
    spans = windows(start, m.today, m.options.window_days)
    if job.repairs_due:
        spans = repair.with_repairs(job, spans)  # windows reconciliation asked for, whatever the lookback
    job.result.windows = len(spans)
    for fetched in prefetch_after(_fetch_windows(job, spans), lambda f: f.final):
        job.result.window_page = fetched.page_of
        job.result.windows_done += fetched.is_last
        window_start, window_end = fetched.window
        advance = Advance(window_start=window_start, window_end=window_end,
                          high_water=window_end if fetched.is_last else None)  # fmt: skip
        if fetched.held:  # the last page: the walk is done, and the close writes it
            hold(job, fetched.payload, advance)
            continue
        if fetched.payload is None and not fetched.refused:
            defer(job, advance)
            if m.progress:
                m.progress(job.result)
            check(m.stop)
            continue
        if fetched.payload is None:
            write = nothing
        else:
            beyond_the_mark = high_water is None or window_start > high_water
            write = job.history.write(m.member_id, fetched.payload, dt.datetime.now(dt.UTC),
                                      beyond_the_mark=beyond_the_mark)  # fmt: skip
        write_page(job, write, fetched.refused, advance)


def walk_newest_first(job: Job) -> None:
    """Refunds, which have no date filter: newest first until a whole page is known and
    unchanged (and older than any refund still pending), with a full pass now and then."""
    m = job.member
    now = dt.datetime.now(dt.UTC)
    full = (
        m.full
        or job.last_full_pass_at is None
        or (now - job.last_full_pass_at > dt.timedelta(days=m.options.refund_full_pass_days))
        or (job.repairs_due and repair.full_pass(job))
    )
    pending = job.oldest_pending
    for page, refused, counter in pages(job, job.history.fetch(m.fetch)):
        job.result.window_page = (page.page_num, page.page_count)
        advance = Advance(full_pass=page.is_last)
        if not page.items and not refused:
            defer(job, advance)
            continue
        rows = page.items
        small_last = _small_last(page, refused, page.is_last)
        held = job.history.hold(rows, counter, only_page=page.page_num == 1) if small_last else None
        if held is not None:
            hold(job, held, advance)
            break
        if rows:
            payload, _ = job.history.prepare(m.member_id, rows, counter, job.limits)
            write = job.history.write(m.member_id, payload, dt.datetime.now(dt.UTC), beyond_the_mark=False)
        else:
            write = nothing
        counts = write_page(job, write, refused, advance)
        oldest_here = min((r.req_dt.date() for r in rows), default=None)
        past_pending = pending is None or (oldest_here is not None and oldest_here <= pending)
        if not full and counts.all_known and rows and past_pending:
            break

