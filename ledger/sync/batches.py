"""Requests from many threads run as one statement: while one batch runs, the next gathers.

The syncs of a process (`ledger sync --jobs 32`, a worker's threads) start and close their
members one statement each. Each statement has a cost of its own, paid again for every member
(the server's executor, its commit, the client's round trip through the driver), larger than
the rows it writes. A thread that has a request queues it; if no batch is running it runs
one itself, taking whatever the others queued meanwhile (flat combining: no timer, no thread
of its own, no wait when the process is idle, batches that grow with the load).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any


class _Slot:
    __slots__ = ("request", "key", "group", "done", "result", "error")

    def __init__(self, request: Any, key: Hashable, group: Hashable) -> None:
        self.request, self.key, self.group = request, key, group
        self.done, self.result, self.error = False, None, None


class Combiner:
    def __init__(self, run: Callable[[list], list], *, limit: int = 64) -> None:
        """run(requests) returns a result per request, in order (or raises: every request of
        the batch gets the error)."""
        self._run = run
        self._limit = limit
        self._queue: list[_Slot] = []
        self._busy = False
        self._changed = threading.Condition()

    def submit(self, request: Any, *, key: Hashable = None, group: Hashable = None) -> Any:
        """The request's result, run in a batch with others of the same group and other keys
        (two requests with one key are never in one batch)."""
        slot = _Slot(request, key, group)
        with self._changed:
            self._queue.append(slot)
            while not slot.done:
                if self._busy:
                    self._changed.wait()
                    continue
                self._busy = True
                batch = self._take()
                self._changed.release()
                try:
                    self._execute(batch)
                finally:
                    self._changed.acquire()
                    self._busy = False
                    self._changed.notify_all()
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _take(self) -> list[_Slot]:
        """The oldest requests of the first one's group, one per key, up to the limit."""
        group, keys, batch, rest = self._queue[0].group, set(), [], []
        for slot in self._queue:
            if len(batch) < self._limit and slot.group == group and (slot.key is None or slot.key not in keys):
                batch.append(slot)
                keys.add(slot.key)
            else:
                rest.append(slot)
        self._queue = rest
        return batch

    def _execute(self, batch: list[_Slot]) -> None:
        try:
            results = self._run([slot.request for slot in batch])
        except BaseException as exc:  # each requester raises it in its own thread
            for slot in batch:
                slot.error, slot.done = exc, True
            return
        for slot, result in zip(batch, results, strict=True):
            slot.result, slot.done = result, True
