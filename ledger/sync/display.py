"""What `ledger sync` (and the demo) shows while syncing and when done: a line per running
(member, kind) with pages, rows, rate and ETA, and one totals line at the end."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.sync.service import SyncResult
    from ledger.sync.tally import SyncTally


def fraction_done(result: SyncResult) -> float:
    """Share of the run's pages written: whole windows done plus the part of the current one."""
    page, of = result.window_page
    in_window = page / of if of and page < of else 0.0
    return min(1.0, (result.windows_done + in_window) / max(result.windows, 1))


def describe(result: SyncResult, elapsed: float) -> str:
    """'37 pages, 36,512 rows, 1,850 rows/s, ETA 0:06:12' (ETA once a share is known)."""
    rate = result.rows / elapsed if elapsed > 0 else 0.0
    parts = [f"{result.pages:,} pages", f"{result.rows:,} rows", f"{rate:,.0f} rows/s"]
    share = fraction_done(result)
    if 0 < share < 1:
        parts.append(f"ETA {_clock(elapsed * (1 - share) / share)}")
    return ", ".join(parts)


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def counted(number: int, noun: str) -> str:
    """`1 sync`, `2 syncs`, `1,000 rows`: a count with its noun, singular for one."""
    return f"{number:,} {noun}{'s' * (number != 1)}"


def totals_line(tally: SyncTally, elapsed: float) -> str:
    """One line for the end of a sync: members, rows, API calls, time, failures."""
    members, rows = tally.members, tally.total("rows")
    rate = f" ({rows / elapsed:,.0f} rows/s)" if elapsed > 0 else ""
    return (
        f"{counted(members, 'member')}, {counted(tally.total('syncs'), 'sync')}, {counted(rows, 'row')}{rate}, "
        f"{counted(tally.total('api_calls'), 'API call')} in {elapsed:.1f} s, {tally.count('failed'):,} failed"
    )


class SyncProgress:
    """Follows every running sync's result object (the service updates it after each page)
    and, on a terminal, draws a bar per running (member, kind) under one for the whole sync.
    A sync's result is let go when it ends (ledger/sync/tally.py keeps what is shown)."""

    def __init__(self, total_syncs: int, *, show: bool) -> None:
        self._lock = threading.Lock()
        self.results: dict[tuple[str, str], SyncResult] = {}
        self._started: dict[tuple[str, str], float] = {}
        self._tasks: dict[tuple[str, str], int] = {}
        self._progress = None
        self._finished, self._total = 0, total_syncs
        if show:
            # lazy: rich's progress costs a tenth of a second of start-up; only a terminal draws it
            from rich.progress import BarColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=20), TextColumn("{task.fields[detail]}"),
                transient=True,
            )  # fmt: skip
            self._overall = self._progress.add_task("all syncs", total=total_syncs, detail=f"0 of {total_syncs} done")

    def __enter__(self) -> SyncProgress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress:
            self._progress.stop()

    def page(self, result: SyncResult) -> None:
        """Called when a sync starts and after each page it commits."""
        key = (result.corp_num, result.kind)
        with self._lock:
            self.results[key] = result
            started = self._started.setdefault(key, time.monotonic())
            if self._progress is None:
                return
            if key not in self._tasks:
                self._tasks[key] = self._progress.add_task(f"{result.corp_num} {result.kind}", total=1.0, detail="")
            detail = describe(result, time.monotonic() - started)
            self._progress.update(self._tasks[key], completed=fraction_done(result), detail=detail)

    def done(self, result: SyncResult) -> None:
        key = (result.corp_num, result.kind)
        with self._lock:
            self.results.pop(key, None)
            self._started.pop(key, None)
            if self._progress is None:
                return
            task = self._tasks.pop(key, None)
            if task is not None:
                self._progress.remove_task(task)
            self._finished += 1
            self._progress.update(self._overall, completed=self._finished, detail=f"{self._finished} of {self._total} done")

    def running(self) -> list[SyncResult]:
        """Runs whose row may still say running: a member's runs are closed together when its
        last kind ends, so one that ended here may wait on a sibling stuck in a request."""
        with self._lock:
            return [r for r in self.results.values() if r.run_id is not None and r.status != "skipped"]


def stopped_summary(tally: SyncTally) -> str:
    """One line: what an interrupted sync kept."""
    not_started = tally.count("not started") + max(0, tally.members * tally.kinds_per_member - tally.total("syncs"))
    return (
        f"interrupted: kept {tally.total('pages'):,} whole pages ({tally.total('rows'):,} rows) "
        f"from {tally.kept_something} syncs; {tally.count('succeeded')} finished, {tally.count('interrupted')} "
        f"interrupted, {not_started} not started. Run `ledger sync` again to complete the ledger."
    )


def result_rows(results: list[SyncResult]) -> list[dict]:
    """A row per (member, kind) for tables and JSON."""
    return [
        {"corp_num": r.corp_num, "kind": r.kind, "status": r.status, "pages": r.pages, "api_calls": r.api_calls,
         "inserted": r.inserted, "updated": r.updated, "unchanged": r.unchanged, "error": r.error}
        for r in results
    ]  # fmt: skip
