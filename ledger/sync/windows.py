"""Date windows for the dated histories (usage and payments)."""

from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass(frozen=True)
class SyncOptions:
    lookback_days: int = 3  # late-arriving and state-changing rows exist
    window_days: int = 31  # no single query spans more
    initial_days: int = 365  # where a first sync starts, unless told
    per_page: int = 1000
    refund_full_pass_days: int = 7  # a full refund pass at least this often
    paging_restarts: int = 3  # a window whose pages moved under us is restarted this often

    @classmethod
    def from_settings(cls, settings) -> SyncOptions:
        return cls(
            lookback_days=settings.sync_lookback_days,
            window_days=settings.sync_window_days,
            initial_days=settings.sync_initial_days,
            per_page=settings.sync_per_page,
        )


def windows(start: dt.date, end: dt.date, days: int) -> list[tuple[dt.date, dt.date]]:
    """Consecutive [start, end] windows of at most `days` days covering start..end."""
    if start > end:
        return []
    spans, cursor = [], start
    while cursor <= end:
        last = min(end, cursor + dt.timedelta(days=days - 1))
        spans.append((cursor, last))
        cursor = last + dt.timedelta(days=1)
    return spans


def first_day(
    high_water: dt.date | None, today: dt.date, options: SyncOptions, since: dt.date | None = None
) -> dt.date:
    if since is not None:
        return since
    if high_water is None:
        return today - dt.timedelta(days=options.initial_days)
    return min(today, high_water - dt.timedelta(days=options.lookback_days))
