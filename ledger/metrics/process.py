"""The worker's own metrics, kept in this process (prometheus-client's default registry) and
served on LEDGER_WORKER_METRICS_PORT: Popbill calls, their latency and retries, rows written,
task durations. Counters only grow; Prometheus computes the rates."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

POPBILL_CALLS = Counter("ledger_popbill_calls_total", "Popbill API calls by call name and outcome (after retries).",
                        ["call", "outcome"])  # fmt: skip
POPBILL_CALL_SECONDS = Histogram("ledger_popbill_call_duration_seconds",
                                 "Time a Popbill call took, retries and their waits included.", ["call"],
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))  # fmt: skip
POPBILL_RETRIES = Counter("ledger_popbill_retries_total", "Popbill calls tried again after a transient failure.", ["call"])
DOUBTFUL_ANSWERS = Counter("ledger_doubtful_answers_total",
                           "Answers kept as doubt: no state changed and no mark moved because of them (by call).",
                           ["call"])  # fmt: skip
ROWS_WRITTEN = Counter("ledger_sync_rows_written_total", "History rows written by the sync, by kind and change.",
                       ["kind", "change"])  # fmt: skip
TASK_SECONDS = Histogram("ledger_task_duration_seconds", "Celery task run time by task and outcome.", ["task", "outcome"],
                         buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))  # fmt: skip


def outcome_of(exc: BaseException | None) -> str:
    """'ok', or the error's class in snake case (business_error, transport_error, ...)."""
    if exc is None:
        return "ok"
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def observe_call(call: str, seconds: float, failure: BaseException | None, tries: int) -> None:
    """The Popbill client's call observer (ledger.popbill.requestor.CallObserver) in the worker."""
    POPBILL_CALL_SECONDS.labels(call).observe(seconds)
    POPBILL_CALLS.labels(call, outcome_of(failure)).inc()
    if tries > 1:
        POPBILL_RETRIES.labels(call).inc(tries - 1)
