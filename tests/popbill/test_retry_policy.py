"""The retry decision and the wait, on their own."""

from __future__ import annotations

import pytest

from ledger.popbill.errors import (
    AuthError,
    BusinessError,
    InvalidRequestError,
    PagingError,
    RateLimitError,
    ReadTimeoutError,
    ServerError,
    TransportError,
)
from ledger.popbill.retry import backoff_seconds, call_with_retries, should_retry

CASES = [
    (TransportError("refused", sent=False), True, True),
    (TransportError("dropped", sent=True), True, False),
    (ReadTimeoutError("timeout", sent=True), True, False),
    (RateLimitError("429", retry_after=1), True, False),
    (ServerError("503"), True, False),
    (BusinessError("no", code=-14000001), False, False),
    (AuthError("no", code=-11000002), False, False),
    (InvalidRequestError("CorpNum", "bad"), False, False),
    (PagingError("moved"), False, False),
    (ValueError("bug"), False, False),
]


@pytest.mark.parametrize(("exc", "idempotent_retry", "non_idempotent_retry"), CASES)
def test_should_retry(exc, idempotent_retry, non_idempotent_retry):
    assert should_retry(exc, idempotent=True) is idempotent_retry
    assert should_retry(exc, idempotent=False) is non_idempotent_retry


def test_retry_after_wins_over_backoff_and_is_capped():
    assert backoff_seconds(1, RateLimitError("x", retry_after=7), base=0.5, cap=30) == 7
    assert backoff_seconds(1, RateLimitError("x", retry_after=700), base=0.5, cap=30) == 30


def test_backoff_grows_exponentially_with_jitter_under_the_cap():
    for attempt in range(1, 10):
        wait = backoff_seconds(attempt, ServerError("x"), base=0.5, cap=8)
        assert 0 <= wait <= min(8, 0.5 * 2 ** (attempt - 1))


def test_attempts_are_bounded():
    calls = []

    def failing():
        calls.append(1)
        raise ServerError("down")

    with pytest.raises(ServerError):
        call_with_retries(failing, idempotent=True, attempts=3, max_seconds=10, base=0)
    assert len(calls) == 3


def test_non_idempotent_sent_failure_is_tried_once():
    calls = []

    def failing():
        calls.append(1)
        raise ReadTimeoutError("t", sent=True)

    with pytest.raises(ReadTimeoutError):
        call_with_retries(failing, idempotent=False, attempts=5, max_seconds=10, base=0)
    assert len(calls) == 1
