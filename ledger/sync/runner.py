"""Running a sync of many members in the foreground: what `ledger sync`, the demo and the
sandbox share. The syncs run in a thread the caller's thread watches, so progress shows live
and Ctrl-C/SIGTERM stop them quickly and cleanly (SyncStopped, once they stopped or after a
grace period when one is stuck in a request). A member whose sync loses the database is tried
again for a while, then reported failed while the others go on (sync/resilient.py)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ledger.db.transient import retry_transient
from ledger.members.service import get_member
from ledger.popbill import PopbillClient
from ledger.settings import Settings
from ledger.sync.display import SyncProgress
from ledger.sync.interrupt import close_interrupted_runs
from ledger.sync.resilient import sync_member_kinds_resilient
from ledger.sync.service import SyncResult, members_to_sync, sync_all
from ledger.sync.tally import SyncTally

# After Ctrl-C or SIGTERM, syncs get this long to reach a page boundary (in this process or in a
# worker of ledger/sync/processes.py); a sync still waiting on Popbill then has its run closed as
# interrupted and its page rolled back by the exit.
STOP_GRACE_SECONDS = 1.5


class SyncStopped(Exception):
    """Ctrl-C or SIGTERM stopped the sync; `forced` when some sync (or worker) had to abandon a request."""

    def __init__(self, tally: SyncTally, forced: bool) -> None:
        super().__init__("interrupted")
        self.tally, self.forced = tally, forced


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, force: threading.Event):
    """SIGINT and SIGTERM ask the syncs (in this process or its workers) to stop; a second one
    stops waiting for them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        (force if stop.is_set() else stop).set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_sync(
    engine: Engine,
    client: PopbillClient,
    *,
    corp_nums: list[str],
    kinds: tuple[str, ...],
    show_progress: bool,
    jobs: int = 1,
    settings: Settings | None = None,
    on_result: Callable[[SyncResult], None] | None = None,
    keep_all: bool | None = None,
    **options,
) -> SyncTally:
    """sync_all for these members (all active ones when none are named) and kinds: what they
    came to, tallied (every result kept for a small sync, ledger/sync/tally.py); on_result is
    told of each result as it ends."""
    settings = settings or Settings()  # the retry bounds' defaults
    options["sync"] = partial(sync_member_kinds_resilient, settings=settings)

    def resolve() -> list[str]:
        if not corp_nums:
            return members_to_sync(engine)  # every active member
        with Session(engine) as session:
            return [get_member(session, c).corp_num for c in corp_nums]

    # The database may be restarting right now: wait for it a while, as each sync would.
    corp_nums = retry_transient(resolve, max_seconds=settings.db_retry_seconds)
    tally = SyncTally(members=len(corp_nums), kinds=len(kinds), keep_all=keep_all)
    if not corp_nums:
        return tally
    total = len(corp_nums) * len(kinds)
    stop, force = threading.Event(), threading.Event()
    outcome: dict = {}

    def ended(result: SyncResult) -> None:
        tracker.done(result)
        tally.add(result)
        if on_result is not None:
            on_result(result)

    def work() -> None:
        try:
            sync_all(
                engine, client, corp_nums=corp_nums or None, kinds=kinds, jobs=jobs, keep=False,
                progress=tracker.page, on_result=ended, stop=stop, **options,
            )  # fmt: skip
        except BaseException as exc:  # raised again in the watching thread
            outcome["error"] = exc

    with SyncProgress(total, show=show_progress) as tracker, stop_on_signals(stop, force):
        worker = threading.Thread(target=work, name="sync", daemon=True)
        worker.start()
        deadline = None
        while worker.is_alive():
            worker.join(0.1)
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + STOP_GRACE_SECONDS
            if force.is_set() or (deadline is not None and time.monotonic() > deadline):
                break
    if "error" in outcome:
        raise outcome["error"]
    if worker.is_alive():  # some sync is stuck in a request: close its run; the exit rolls back its page
        running = tracker.running()
        close_interrupted_runs(engine, running)
        for result in running:  # what each (member, kind) still running came to
            result.status = "interrupted"
            tally.add(result)
        raise SyncStopped(tally, forced=True)
    if stop.is_set():
        raise SyncStopped(tally, forced=False)
    return tally
