"""A bounded warm shutdown for the thread-pool worker.

On SIGTERM Celery's warm shutdown waits for running tasks however long they take, and its cold
shutdown cannot cancel a thread. So: running tasks get worker_soft_shutdown_timeout to finish;
whatever still runs then is handed back to the broker (rejected with requeue, which puts a Redis
message straight back on its queue) and the process exits. Every task is idempotent, and a sync
cut off mid-page rolls its page back, so another worker simply does it again, within seconds
instead of after the visibility timeout."""

from __future__ import annotations

import logging
import os
import threading
import time

from celery.worker import state

log = logging.getLogger(__name__)
EXIT_HANDED_BACK = 1


def active_requests() -> list:

    return list(state.active_requests)


def bounded_shutdown(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while active_requests() and time.monotonic() < deadline:
        time.sleep(0.1)  # no event to await: Celery's state is a plain set
    running = active_requests()
    if not running:
        return  # Celery's own warm shutdown finishes from here
    for request in running:
        try:
            # The message itself, not request.reject(): Celery defers that to its event loop,
            # which no longer turns during a shutdown.
            request._message.reject(requeue=True)
            log.warning("handed %s[%s] back to the broker at shutdown", request.name, request.id)
        except Exception:  # noqa: BLE001 - the visibility timeout still brings it back
            log.exception("could not hand %s[%s] back", request.name, request.id)
    logging.shutdown()
    os._exit(EXIT_HANDED_BACK)  # the task threads cannot be stopped otherwise


def start(timeout: float) -> None:
    threading.Thread(target=bounded_shutdown, args=(timeout,), name="ledger-shutdown", daemon=True).start()
