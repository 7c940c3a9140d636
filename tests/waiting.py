from __future__ import annotations

import time


def wait_for(condition, *, timeout: float = 30.0, what: str) -> None:
    """Wait for an event we cannot be told of directly (a lock wait, a request arriving, a
    row appearing in another process's database)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
