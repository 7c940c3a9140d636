"""What one sync carries while it runs: the member's context, one job per kind, and the result
each job reports (to the caller, the progress display and the run's row)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from ledger.history.screening import RowLimits
from ledger.history.writer import WriteCounts
from ledger.popbill import PopbillClient
from ledger.sync.deferred import Deferred
from ledger.sync.kinds import Fetch, Payments
from ledger.sync.repair import Repairs
from ledger.sync.windows import SyncOptions


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
    error_class: str | None = None  # the failure's exception class, for the log line of each failure
    popbill_code: int | None = None  # Popbill's own (negative) code, when Popbill refused
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
class MemberRun:
    """One member's sync, shared by its kinds."""

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

    @property
    def fetch(self) -> Fetch:
        return Fetch(self.client, self.corp_num, self.user_id, self.options.per_page)


@dataclasses.dataclass
class Job:
    """One kind of one member's sync: what it needs to fetch and where it stands."""

    member: MemberRun
    history: Payments  # one of ledger.sync.kinds.HISTORIES (Usage shares its shape)
    result: SyncResult
    limits: RowLimits
    high_water: dt.date | None = None
    last_full_pass_at: dt.datetime | None = None
    oldest_pending: dt.date | None = None
    repairs_due: bool = False  # reconciliation asked for windows again (ledger.sync.repair)
    repairs: Repairs | None = None  # the repair windows this run took
    deferred: Deferred = dataclasses.field(default_factory=Deferred)
    held: object | None = None  # the rows of a small last page, written by the close (UsageRows or MutableRows)

    @property
    def kind(self) -> str:
        return self.history.name
