"""One gate for every call a process makes to Popbill: at most N in flight, and after a 429
every thread waits out its Retry-After together (a shared backoff, not one per thread)."""

from __future__ import annotations

import threading
import time


class Gate:
    def __init__(self, max_concurrency: int) -> None:
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._changed = threading.Condition()
        self._paused_until = 0.0  # time.monotonic()

    def __enter__(self) -> Gate:
        self._slots.acquire()
        try:
            self.wait_out_pause()
        except BaseException:
            self._slots.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._slots.release()

    def wait_out_pause(self) -> None:
        with self._changed:
            while (left := self._paused_until - time.monotonic()) > 0:
                self._changed.wait(left)

    def pause(self, seconds: float) -> None:
        """No call leaves for `seconds` from now (a longer pause already set stays)."""
        with self._changed:
            self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, seconds))
            self._changed.notify_all()
