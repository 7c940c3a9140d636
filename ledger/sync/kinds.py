"""One small object per history kind: how its pages are fetched, prepared and written.

The sync's walkers (ledger/sync/walk.py) take one of these and never ask which kind it is:
- usage and payments are walked by date windows (`dated = True`);
- refunds have no date filter and are walked newest first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from functools import partial

from sqlalchemy import Connection

from ledger.history import identity
from ledger.history.screening import RowLimits, screen_row
from ledger.history.small_pages import MutableRows, UsageRows
from ledger.history.usage_page import screen_usage_copy
from ledger.history.writer import (
    PAYMENTS,
    REFUNDS,
    WriteCounts,
    write_mutable_page,
    write_usage_copy,
)
from ledger.popbill import PopbillClient
from ledger.popbill.models import Page, PaymentHistory, RefundHistory

Write = Callable[[Connection], WriteCounts]


@dataclasses.dataclass(frozen=True)
class Fetch:
    """Who is being synced, and how: what every fetch of a kind needs."""

    client: PopbillClient
    corp_num: str
    user_id: str | None
    per_page: int


class Usage:
    """GetUseHistory, by date window, oldest first. Rows stay the dicts they were decoded as:
    each is screened as it becomes its COPY line (no typed row per usage, the bulk of a history)."""

    name = "usage"
    dated = True
    row_type = None
    screened_in_prepare = True

    def fetch(self, how: Fetch, window: tuple[dt.date, dt.date]) -> Callable[..., Iterator[Page]]:
        return partial(
            how.client.iter_use_history, how.corp_num, *window, per_page=how.per_page, order="A", user_id=how.user_id
        )

    def screen(self, rows: tuple, limits: RowLimits) -> tuple[tuple, list]:
        """The rows screening keeps, and those it refuses with why: for a page the close writes
        (a COPY page is screened in prepare, as each row becomes its line)."""
        kept, refused = [], []
        for row in rows:
            reason = screen_row(self.name, row, limits)
            if reason is None:
                kept.append(row)
            else:
                refused.append((row, reason))
        return tuple(kept), refused

    def prepare(self, member_id: int, rows: tuple, counter: identity.OccurrenceCounter,
                limits: RowLimits) -> tuple[bytes | None, list]:  # fmt: skip
        """The page's COPY bytes (None: every row refused) and the rows screening refused. Runs in
        the prefetch thread, so it overlaps the write of the page before."""
        copy = screen_usage_copy(member_id, rows, counter, limits)
        return (copy.data if copy.rows else None), copy.refused

    def write(self, member_id: int, payload: bytes, seen_at: dt.datetime, *, beyond_the_mark: bool) -> Write:
        return partial(write_usage_copy, payload=payload, seen_at=seen_at, likely_new=beyond_the_mark)

    def hold(self, rows: tuple, counter: identity.OccurrenceCounter, *, only_page: bool) -> UsageRows:
        """A small last page, written with the close (ledger/history/small_pages.py)."""
        return UsageRows.of(rows, counter)


class Payments:
    """GetPaymentHistory, by date window. Rows are typed and merged (their state changes)."""

    name = "payments"
    dated = True
    row_type = PaymentHistory
    screened_in_prepare = False  # screened and typed as their page arrives (ledger/sync/walk.py)
    spec = PAYMENTS

    def fetch(self, how: Fetch, window: tuple[dt.date, dt.date]) -> Callable[..., Iterator[Page]]:
        return partial(how.client.iter_payment_history, how.corp_num, *window, per_page=how.per_page,
                       user_id=how.user_id)  # fmt: skip

    def screen(self, rows: tuple, limits: RowLimits) -> tuple[tuple, list]:
        """Screened (and typed) as their page arrived, in ledger/sync/walk.py."""
        return rows, []

    def prepare(self, member_id: int, rows: tuple, counter: identity.OccurrenceCounter,
                limits: RowLimits) -> tuple[tuple, list]:  # fmt: skip
        return (rows, counter), []

    def write(self, member_id: int, payload: tuple, seen_at: dt.datetime, *, beyond_the_mark: bool) -> Write:
        rows, counter = payload
        return partial(write_mutable_page, spec=self.spec, member_id=member_id, rows=rows, counter=counter,
                       seen_at=seen_at)  # fmt: skip

    def hold(self, rows: tuple, counter: identity.OccurrenceCounter, *, only_page: bool) -> MutableRows | None:
        """A small last page, written with the close (ledger/history/small_pages.py); None unless
        it is its window's only page and no key repeats on it. Tied rows take their occurrences by
        content against the stored ones (ledger.history.writer), which the close does not do; and
        an earlier page of the window claims its occurrences only when it is written, which may be
        after this page was fetched ahead (so its claims cannot be looked at here)."""
        keys = [identity.row_key(row.raw, self.spec.key_fields) for row in rows]
        if not only_page or len(set(keys)) < len(keys):
            return None
        return MutableRows.of(self.spec, rows, counter)


class Refunds(Payments):
    """GetRefundHistory: no date filter, newest first (ledger/sync/walk.py walk_newest_first)."""

    name = "refunds"
    dated = False
    row_type = RefundHistory
    spec = REFUNDS

    def fetch(self, how: Fetch, window: None = None) -> Callable[..., Iterator[Page]]:
        return partial(how.client.iter_refund_history, how.corp_num, per_page=how.per_page, user_id=how.user_id)


HISTORIES = {kind.name: kind for kind in (Payments(), Usage(), Refunds())}


def nothing(conn: Connection) -> WriteCounts:
    """The write of a page whose rows screening all refused: the page still commits, with its quarantine."""
    return WriteCounts()
