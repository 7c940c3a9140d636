"""Fetch the next page while the caller writes this one.

On two cores the database works on page N while this thread fetches and parses page N+1;
at most `depth` pages wait in memory, so memory stays flat however long the history.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()
# The consumer (the sync's writer) waits on PostgreSQL several times a page, and each time it
# wakes it needs the GIL back from the CPU-bound producer, which CPython hands over only every
# switch interval (5 ms by default): tens of ms lost a page. At 0.5 ms an initial sync of
# 100,000 rows took 4.5 s instead of 5.9 s of wall, for the same CPU.
_SWITCH_INTERVAL = 0.0005


def prefetch(source: Iterator[T], depth: int = 1) -> Iterator[T]:
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((_DONE, exc))

    if sys.getswitchinterval() > _SWITCH_INTERVAL:
        sys.setswitchinterval(_SWITCH_INTERVAL)  # process-wide; never raised back, never raised
    worker = threading.Thread(target=produce, name="page-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)


def prefetch_after(source: Iterator[T], is_final: Callable[[T], bool]) -> Iterator[T]:
    """The first item in this thread; the rest through prefetch() unless the first is final.
    Most nightly syncs are one page long: they need no thread and no queue."""
    first = next(source, _DONE)
    if first is _DONE:
        return
    yield first
    if is_final(first):
        yield from source  # ends at once: nothing more to fetch
    else:
        yield from prefetch(source)
