"""What a sync of many members came to, without a result kept per member and kind.

At 100,000 members `ledger sync` kept 300,000 results for its table (peak RSS 1.25 GB). A
tally keeps counts and sums per kind and status, and the results worth reading: every one
when the sync is small enough to show member by member, else those that did not simply
succeed (failed, skipped, interrupted, with rows quarantined), up to a limit.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter

from ledger.sync.job import SyncResult

DETAIL_MEMBERS = 200  # up to this many members, every result is kept and shown
NOTABLE_LIMIT = 1000  # past it, results worth reading are counted, not kept


def notable(result: SyncResult) -> bool:
    return result.status != "succeeded" or bool(result.quarantined)


@dataclasses.dataclass
class KindTotals:
    syncs: int = 0
    pages: int = 0
    api_calls: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    statuses: Counter = dataclasses.field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged


class SyncTally:
    """Fed every result as it ends (from several threads)."""

    def __init__(self, *, members: int, kinds: int = 3, keep_all: bool | None = None) -> None:
        self.members, self.kinds_per_member = members, kinds
        self.keep_all = members <= DETAIL_MEMBERS if keep_all is None else keep_all
        self.kinds: dict[str, KindTotals] = {}
        self.kept: list[SyncResult] = []
        self.not_kept = 0  # notable results past NOTABLE_LIMIT
        self.kept_something = 0  # syncs that committed pages (what an interrupted sync kept)
        self.locked_by_other = 0  # skipped for a lock held by something that is not a sync
        self._lock = threading.Lock()

    def add(self, result: SyncResult) -> None:
        with self._lock:
            totals = self.kinds.setdefault(result.kind, KindTotals())
            totals.syncs += 1
            totals.statuses[result.status] += 1
            totals.pages += result.pages
            totals.api_calls += result.api_calls
            totals.inserted += result.inserted
            totals.updated += result.updated
            totals.unchanged += result.unchanged
            totals.quarantined += result.quarantined
            self.kept_something += bool(result.pages)
            self.locked_by_other += result.locked_by_other
            if self.keep_all or (notable(result) and len(self.kept) < NOTABLE_LIMIT):
                self.kept.append(result)
            elif notable(result):
                self.not_kept += 1

    @property
    def results(self) -> list[SyncResult]:
        """The kept results in member order, kinds in the order synced."""
        order = {kind: n for n, kind in enumerate(self.kinds)}
        return sorted(self.kept, key=lambda r: (r.corp_num, order.get(r.kind, 0)))

    def total(self, field: str) -> int:
        return sum(getattr(t, field) for t in self.kinds.values())

    def count(self, status: str) -> int:
        return sum(t.statuses[status] for t in self.kinds.values())

    def rows_by_kind(self) -> list[dict]:
        """A row per kind for the summary table of a large sync."""
        return [
            {"kind": kind, "syncs": t.syncs, **{s: t.statuses[s] for s in ("succeeded", "failed", "skipped")},
             "pages": t.pages, "inserted": t.inserted, "updated": t.updated, "api_calls": t.api_calls}
            for kind, t in self.kinds.items()
        ]  # fmt: skip
