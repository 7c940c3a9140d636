"""When to retry a Popbill call, and how long to wait. Unit-tested on its own.

Retried: connection errors, timeouts, malformed answers, 429 and 5xx. Never a Popbill
business error, nor an answer over the size limit (it would come back as large). Calls that are not idempotent (PaymentRequest, Refund) are retried only
when the request provably never reached the server: a doubled deposit or refund request
is worse than a clear error.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

import tenacity

from ledger.popbill.errors import RateLimitError, ResponseTooLargeError, ServerError, TransportError

T = TypeVar("T")


def should_retry(exc: BaseException, *, idempotent: bool) -> bool:
    if isinstance(exc, ResponseTooLargeError):
        return False
    if isinstance(exc, TransportError):
        return idempotent or not exc.sent
    if isinstance(exc, (RateLimitError, ServerError)):
        return idempotent
    return False


def backoff_seconds(attempt: int, exc: BaseException | None, *, base: float, cap: float) -> float:
    """Full-jitter exponential backoff; a server's Retry-After wins when it gave one."""
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return min(max(float(retry_after), 0.0), cap)
    return random.uniform(0, min(cap, base * (2 ** (attempt - 1))))


def call_with_retries(
    fn: Callable[[], T],
    *,
    idempotent: bool,
    attempts: int,
    max_seconds: float,
    base: float,
    cap: float = 30.0,
) -> T:
    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff_seconds(state.attempt_number, exc, base=base, cap=cap)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: should_retry(e, idempotent=idempotent)),
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(max_seconds),
        wait=wait,
        reraise=True,
    )
    return retrying(fn)
