"""The database retry is bounded by the time a setting names, not by a count of attempts."""

from __future__ import annotations

import time

import psycopg
import pytest

from ledger.db.transient import retry_transient, retrying


def test_a_database_that_stays_away_is_tried_for_the_whole_bound():
    attempts = []

    def away():
        attempts.append(time.monotonic())
        raise psycopg.OperationalError("connection refused")

    with pytest.raises(psycopg.OperationalError):
        retry_transient(away, max_seconds=0.6, first_wait=0.01)
    # However the jitter falls, the retry gives up only once the bound has passed (the old
    # policy stopped after its 8th attempt, well inside LEDGER_DB_RETRY_SECONDS).
    assert attempts[-1] - attempts[0] >= 0.6 - 0.15 and len(attempts) > 8


def test_a_database_back_in_time_is_used():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 12:
            raise psycopg.OperationalError("the database system is starting up")
        return "ok"

    assert retry_transient(flaky, max_seconds=30, first_wait=0.001) == "ok" and len(calls) == 12


def test_a_lasting_error_is_not_retried():
    calls = []

    def wrong():
        calls.append(1)
        raise psycopg.errors.UniqueViolation("duplicate key")

    with pytest.raises(psycopg.errors.UniqueViolation):
        retrying(max_seconds=10)(wrong)
    assert len(calls) == 1
