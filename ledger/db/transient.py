"""Database errors that pass: the server restarting, a connection terminated or refused, a
deadlock. Worth a bounded retry with backoff, where a wrong statement or a broken constraint
is not."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy.exc import DBAPIError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

T = TypeVar("T")
log = logging.getLogger(__name__)

# Deadlock and serialization failures: the server asks the client to try again.
_RETRY_SQLSTATES = {"40001", "40P01"}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, psycopg.OperationalError):  # connection failures, admin shutdown, cancels
        return True
    return isinstance(exc, psycopg.Error) and getattr(exc, "sqlstate", None) in _RETRY_SQLSTATES


def retrying(*, max_seconds: float, first_wait: float = 0.2, retry=is_transient, before_sleep=None) -> Retrying:
    """Jittered exponential backoff, tried again for as long as `max_seconds` allows (from the
    first attempt): bounded by time, never by a count of attempts, so the bound a setting
    names (LEDGER_DB_RETRY_SECONDS) is the bound that holds however the jitter falls."""
    return Retrying(
        retry=retry_if_exception(retry),
        wait=wait_random_exponential(multiplier=first_wait, max=max(first_wait, max_seconds / 4)),
        stop=stop_after_delay(max_seconds),
        reraise=True,
        before_sleep=before_sleep or _say_retrying,
    )


def retry_transient(fn: Callable[[], T], *, max_seconds: float, first_wait: float = 0.2) -> T:
    """fn(), again after transient database errors, for about `max_seconds`; the last error is raised."""
    return retrying(max_seconds=max_seconds, first_wait=first_wait)(fn)


def _say_retrying(state) -> None:
    exc = state.outcome.exception()
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200] if exc else "?"
    log.warning("database unavailable (%s); retrying in %.1f s (attempt %d)", reason, state.next_action.sleep,
                state.attempt_number)  # fmt: skip
