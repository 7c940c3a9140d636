"""Whose clock the client goes by: this machine's, or Popbill's (UseLocalTimeYN in the SDKs).

Linkhub refuses a request whose x-lh-date is too far from its own clock, and a token's expiry
is written in Linkhub's time. A machine whose clock drifts can therefore sign with Popbill's
time instead: GET /Time on the auth host answers it as `yyyy-MM-ddTHH:mm:ssZ`. Rather than ask
before every request, the server clock learns the offset once and asks again every few minutes.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

from ledger.kst import KST


def parse_server_time(text: str) -> dt.datetime:
    """'2026-11-26T01:02:03Z' (optionally with milliseconds) to an aware UTC datetime."""
    value = text.strip().strip('"')
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a Linkhub time: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"not a Linkhub time (no zone): {value[:40]!r}")
    return moment.astimezone(dt.UTC)


class LocalClock:
    """This machine's clock (the SDKs' default, UseLocalTimeYN = true)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def today_kst(self) -> dt.date:
        return self.now().astimezone(KST).date()


class ServerClock(LocalClock):
    """Popbill's clock: the local clock plus the offset last measured against GET /Time."""

    def __init__(self, fetch_server_time: Callable[[], dt.datetime], refresh_seconds: float = 600.0) -> None:
        self._fetch = fetch_server_time
        self._refresh_seconds = refresh_seconds
        self._offset: dt.timedelta | None = None
        self._measured_at = 0.0  # time.monotonic() of the last measurement
        self._lock = threading.Lock()

    def offset(self) -> dt.timedelta:
        with self._lock:
            stale = time.monotonic() - self._measured_at > self._refresh_seconds
            if self._offset is None or stale:
                before = dt.datetime.now(dt.UTC)
                server = self._fetch()
                after = dt.datetime.now(dt.UTC)
                # The server read its clock somewhere between our two readings: take the middle.
                self._offset = server - (before + (after - before) / 2)
                self._measured_at = time.monotonic()
            return self._offset

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset()
