"""The state advance of pages that held no rows, kept in memory until it can ride on the next
page's transaction or on the close: a no-change re-sync then costs one transaction per member,
and losing such an advance only means fetching an empty window again."""

from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass
class Advance:
    """Where one kind's sync has got to, as the sync_states columns it moves."""

    pages: int = 0
    window_start: dt.date | None = None
    window_end: dt.date | None = None
    high_water: dt.date | None = None
    full_pass: bool = False
    succeeded: bool = False

    def merge(self, later: Advance) -> Advance:
        """This advance followed by a later one: pages add up, the high-water mark never moves back."""
        marks = [mark for mark in (self.high_water, later.high_water) if mark is not None]
        return Advance(
            pages=self.pages + later.pages,
            window_start=later.window_start or self.window_start,
            window_end=later.window_end or self.window_end,
            high_water=max(marks) if marks else None,
            full_pass=self.full_pass or later.full_pass,
            succeeded=self.succeeded or later.succeeded,
        )


@dataclasses.dataclass
class Deferred:
    """The advances of empty pages not committed yet."""

    pending: Advance = dataclasses.field(default_factory=Advance)

    def add(self, advance: Advance) -> None:
        self.pending = self.pending.merge(advance)

    def take(self) -> Advance:
        taken, self.pending = self.pending, Advance()
        return taken


def advance_params(advances: list[tuple[int, str, Advance]], *, durable: bool) -> dict:
    """ADVANCE_STATES's parameters (ledger/sync/sql.py) for these (member id, kind, advance)."""
    columns = {"member_ids": [], "kinds": [], "pages": [], "window_starts": [], "window_ends": [], "high_waters": [],
               "full_passes": [], "succeeded": []}  # fmt: skip
    for member_id, kind, a in advances:
        for column, value in zip(columns.values(), (member_id, kind, a.pages, a.window_start, a.window_end,
                                                    a.high_water, a.full_pass, a.succeeded), strict=True):  # fmt: skip
            column.append(value)
    return {"commit_mode": "on" if durable else "off", **columns}
