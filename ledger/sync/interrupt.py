"""Stopping syncs on request (Ctrl-C, SIGTERM): an event the syncs look at between pages.

A sync that sees it stops after committing the page in hand, so what it kept is whole;
the run is recorded as `interrupted` and the next sync goes on from the high-water mark.
"""

from __future__ import annotations

import threading

from sqlalchemy import func, update

from ledger.sync.models import SyncRun


class SyncInterrupted(Exception):
    """A stop was asked for; raised between pages, never inside one."""


def check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise SyncInterrupted("interrupted: stopped after the last committed page")


def close_interrupted_runs(engine, results) -> int:
    """Mark runs still `running` as interrupted, with what they kept, when the process must
    exit before they reach a page boundary (a request hanging on a slow server). The page in
    hand is rolled back by PostgreSQL when the process's connections close."""


    closed = 0
    with engine.begin() as conn:
        for r in results:
            closed += conn.execute(
                update(SyncRun)
                .where(SyncRun.id == r.run_id, SyncRun.status == "running")
                .values(
                    status="interrupted", finished_at=func.now(), pages=r.pages, api_calls=r.api_calls,
                    rows_inserted=r.inserted, rows_updated=r.updated, rows_unchanged=r.unchanged,
                    error="interrupted: stopped while waiting on Popbill; the page in hand was rolled back",
                )
            ).rowcount  # fmt: skip
    return closed
