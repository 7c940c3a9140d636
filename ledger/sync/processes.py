"""Syncing members in several processes, so that a large sync uses every core.

One Python process runs Python on one core at a time, and the initial sync of a large
history is bound by the client's CPU per row. `sync_in_processes` forks worker processes;
the parent hands members out one at a time to whichever worker asks next (one large member
does not hold up a fixed share of the others) and gathers their results. Each worker syncs
as `sync_all` does in one process: its own engine, Popbill client and lease connection, its
share of `jobs` members at once in threads, the same resilient sync per member. Its share of
POPBILL_MAX_CONCURRENCY too: that setting stays the budget of the whole command. The pool
is shared out the same way, so the command keeps to about one process's connections.

Stopping: Ctrl-C or SIGTERM (to the parent, or to the whole process group) stops handing
out members and asks every worker to stop after the page in hand, as `ledger sync` does in
one process; a worker whose sync is stuck in a request closes its runs as interrupted after
the same grace period and exits.

A worker that dies (kill -9, the OOM killer) loses only the pages it had not committed: the
members it had in flight are reported failed, their runs closed as failed once their leases
are free, members not handed out yet go to the other workers, and the next sync completes
the ledger from where each member's committed pages left it. Workers die with the parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection, wait

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ledger.db.engine import POOL_SIZE, make_engine
from ledger.db.transient import retry_transient
from ledger.members.models import Member
from ledger.members.service import get_member
from ledger.popbill import PopbillClient
from ledger.settings import Settings
from ledger.sync.display import SyncProgress
from ledger.sync.interrupt import close_interrupted_runs
from ledger.sync.models import KINDS
from ledger.sync.resilient import record_cut_short, sync_member_kinds_resilient
from ledger.sync.runner import STOP_GRACE_SECONDS, SyncStopped, stop_on_signals
from ledger.sync.service import SyncResult, members_to_sync
from ledger.sync.tally import SyncTally

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_HUNG = "interrupted: stopped while waiting on Popbill; the page in hand was rolled back"


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def processes_for(engine: Engine, corp_nums: list[str] | None, requested: int | None, jobs: int) -> int:
    """How many processes a sync of these members (every active one when None) is worth; one
    in a process already running threads (an embedding application, a test), which cannot fork."""
    wanted = requested or available_cpus()
    if wanted <= 1 or jobs <= 1 or threading.active_count() > 1:
        return 1
    if corp_nums:
        members = len(set(corp_nums))
    else:
        with engine.connect() as conn:
            members = conn.scalar(select(func.count()).select_from(Member).where(Member.active.is_(True)))
    return worth(wanted, members, jobs)


def worth(wanted: int, members: int, jobs: int) -> int:
    """`wanted` processes, but never more than there are members to share or jobs to run them."""
    return max(1, min(wanted, members, jobs))


@dataclasses.dataclass
class _Worker:
    process: multiprocessing.Process
    conn: Connection
    in_flight: set[str] = dataclasses.field(default_factory=set)
    stuck: bool = False  # exited after closing a run stuck in a request
    gone: bool = False


def sync_in_processes(
    engine: Engine,
    settings: Settings,
    *,
    corp_nums: list[str] | None,
    kinds: tuple[str, ...] = KINDS,
    processes: int,
    jobs: int,
    show_progress: bool = False,
    on_result: Callable[[SyncResult], None] | None = None,
    keep_all: bool | None = None,
    **options,
) -> SyncTally:
    """Sync the named members (or every active one) in `processes` worker processes, `jobs`
    members at once in all: what they came to, tallied as run_sync tallies them (on_result told
    of each as it ends); raises SyncStopped after Ctrl-C/SIGTERM. Must be called before this
    process starts any thread (workers are forked)."""
    if threading.active_count() > 1:
        raise RuntimeError("sync_in_processes forks its workers: call it before starting any thread")

    def resolve() -> list[str]:
        if not corp_nums:
            return members_to_sync(engine)
        with Session(engine) as session:
            return [get_member(session, c).corp_num for c in corp_nums]

    members = retry_transient(resolve, max_seconds=settings.db_retry_seconds)
    tally = SyncTally(members=len(members), kinds=len(kinds), keep_all=keep_all)
    if not members:
        return tally
    processes = worth(processes, len(members), jobs)
    engine.dispose()  # no connection of ours is inherited by a worker
    stop, force = threading.Event(), threading.Event()
    ended: set[str] = set()  # members whose every kind has ended (a worker reported them)

    def done(corp: str, results: list[SyncResult]) -> None:
        ended.add(corp)
        for kind in kinds:
            result = _outcome(corp, kind, results, stop)
            tally.add(result)
            if on_result is not None:
                on_result(result)
    with stop_on_signals(stop, force):
        # Forked before the progress display starts its thread.
        workers = [
            _start_worker(settings, kinds, processes, index, jobs, show_progress, options) for index in range(processes)
        ]
        with SyncProgress(len(members) * len(kinds), show=show_progress) as tracker:
            _serve(workers, deque(members), done, tracker, stop, force)
    for worker in workers:
        worker.conn.close()
        for corp in worker.in_flight:
            if worker.stuck:  # stopped while a request of this member's hung
                done(corp, [SyncResult(corp, kind, status="interrupted", error=_HUNG) for kind in kinds])
            else:
                why = f"the worker process syncing it died ({_exit_reason(worker.process.exitcode)})"
                done(corp, [_failed(engine, corp, kind, f"{why}; run `ledger sync` again") for kind in kinds])
    for corp in members:
        if corp not in ended:  # never handed out (a stop), or every worker died first
            done(corp, [])
    if stop.is_set():
        raise SyncStopped(tally, forced=any(w.stuck for w in workers))
    return tally


def _outcome(corp: str, kind: str, results, stop: threading.Event) -> SyncResult:
    """What the sync of (corp, kind) came to; a kind no worker began is 'not started' after
    a stop, and failed otherwise (every worker died before it)."""
    for result in results:
        if result.kind == kind:
            return result
    if stop.is_set():
        return SyncResult(corp, kind, status="not started")
    return SyncResult(corp, kind, status="failed", error="not synced: every worker process died")


def _failed(engine: Engine, corp: str, kind: str, why: str) -> SyncResult:
    try:
        record_cut_short(engine, corp, kind, why)  # closes its run now if the dead worker's lease is free
    except Exception:  # the next sync closes it as abandoned
        log.warning("could not close the run of %s %s left by a dead worker", corp, kind, exc_info=True)
    return SyncResult(corp, kind, status="failed", error=why, retryable=True)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _serve(workers: list[_Worker], queue: deque, done, tracker: SyncProgress, stop, force) -> None:
    """Answer the workers until all have exited: the next member to whoever asks, results
    and progress recorded as they come; stops forwarded."""
    forwarded = 0  # stop signals passed on to the workers: one to stop, a second to force
    while not all(w.gone for w in workers):
        for event in (stop, force):
            if event.is_set() and forwarded < (1 if event is stop else 2):
                forwarded += 1
                for w in workers:
                    if not w.gone:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(w.process.pid, signal.SIGTERM)
        live = [w for w in workers if not w.gone]
        ready = set(wait([w.conn for w in live] + [w.process.sentinel for w in live], timeout=0.2))
        for w in live:
            exited = w.process.sentinel in ready
            if w.conn in ready or exited:
                try:
                    while w.conn.poll():  # everything it said, even if it has exited since
                        _answer(w, w.conn.recv(), queue, done, tracker, stop)
                except (EOFError, OSError):
                    exited = True
            if exited:
                w.process.join()
                w.gone = True
                if w.process.exitcode not in (0, _EXIT_STUCK):
                    log.error("sync worker %d %s", w.process.pid, _exit_reason(w.process.exitcode))


def _answer(worker: _Worker, message: tuple, queue: deque, done, tracker: SyncProgress, stop) -> None:
    what = message[0]
    if what == "next":
        corp = queue.popleft() if queue and not stop.is_set() else None
        try:
            worker.conn.send(corp)
        except OSError:
            if corp is not None:
                queue.appendleft(corp)  # for another worker: this one is gone
            raise
        if corp is not None:
            worker.in_flight.add(corp)
    elif what == "page":
        tracker.page(message[1])
    elif what == "done":
        corp, results = message[1], message[2]
        worker.in_flight.discard(corp)
        for result in results:
            tracker.done(result)
        done(corp, results)
    elif what == "stuck":
        worker.stuck = True


# -- in a worker process -------------------------------------------------------------------

_EXIT_STUCK = 3  # a worker that closed a run stuck in a request and left it to the exit


def _start_worker(settings, kinds, processes: int, index: int, jobs: int, show_progress: bool, options) -> _Worker:
    ours, theirs = multiprocessing.Pipe()
    share = partial(_share, parts=processes, index=index)
    worker_settings = dataclasses.replace(settings, max_concurrency=max(1, share(settings.max_concurrency)))
    process = multiprocessing.get_context("fork").Process(
        target=_work,
        args=(theirs, worker_settings, kinds, max(1, share(jobs)), max(2, math.ceil(POOL_SIZE / processes)),
              show_progress, options),
        name=f"ledger sync worker {index + 1}",
    )  # fmt: skip
    process.start()
    theirs.close()
    return _Worker(process, ours)


def _share(total: int, *, parts: int, index: int) -> int:
    """This part's share of total, the first parts taking one more when it does not divide."""
    return total // parts + (1 if index < total % parts else 0)


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before that took effect
        os._exit(1)


def _work(conn: Connection, settings: Settings, kinds, jobs: int, pool: int, show_progress: bool, options) -> None:
    """A worker: `jobs` threads, each asking the parent for a member, syncing it, reporting."""

    _die_with_parent(os.getppid())
    stop, force = threading.Event(), threading.Event()
    # A terminal's Ctrl-C reaches the whole process group: the parent passes it on once, as
    # SIGTERM (a first to stop at a page boundary, a second to stop waiting).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: (force if stop.is_set() else stop).set())
    talk = threading.Lock()
    running: dict[tuple[str, str], SyncResult] = {}

    def send(*message) -> None:
        with talk:
            conn.send(message)

    def progress(result: SyncResult) -> None:
        running[(result.corp_num, result.kind)] = result
        if show_progress:
            send("page", result)

    engine = make_engine(settings, pool_size=pool)
    with PopbillClient(settings) as client:
        sync = partial(sync_member_kinds_resilient, engine, client, kinds=kinds, settings=settings, stop=stop,
                       progress=progress, **options)  # fmt: skip

        def members() -> None:
            while not stop.is_set():
                with talk:
                    conn.send(("next",))
                    corp = conn.recv()
                if corp is None:
                    return
                try:
                    done = sync(corp)
                except Exception as exc:  # as sync_all would raise it, but for this member alone
                    log.exception("sync of %s failed", corp)
                    error = f"{type(exc).__name__}: {exc}"[:2000]
                    done = [SyncResult(corp, kind, status="failed", error=error) for kind in kinds]
                for result in done:
                    running.pop((result.corp_num, result.kind), None)
                send("done", corp, done)

        threads = [threading.Thread(target=members, name=f"sync-{n}", daemon=True) for n in range(jobs)]
        for thread in threads:
            thread.start()
        deadline = None
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(0.1)
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + STOP_GRACE_SECONDS
            if force.is_set() or (deadline is not None and time.monotonic() > deadline):
                break
        if any(t.is_alive() for t in threads):
            # A member's runs are closed together when its last kind ends: every kind of a
            # member not reported done may still say running, whatever it came to here.
            stuck = [r for r in list(running.values()) if r.run_id is not None and r.status != "skipped"]
            close_interrupted_runs(engine, stuck)
            by_member: dict[str, list[SyncResult]] = {}
            for result in stuck:
                if result.status == "running":
                    result.status = "interrupted"
                by_member.setdefault(result.corp_num, []).append(result)
            for corp, done in by_member.items():
                send("done", corp, done)
            send("stuck")
            conn.close()
            os._exit(_EXIT_STUCK)  # a request still hangs in a thread: do not wait for it
    engine.dispose()
    conn.close()
