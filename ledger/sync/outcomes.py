"""The log lines of sync outcomes, the same from `ledger sync` and the worker's tasks: one line
per member and kind, and for a failure the member, kind, run id, the error's class and Popbill's
code as fields (JSON with LEDGER_LOG_FORMAT=json)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ledger import logs
from ledger.sync.service import SyncResult

log = logging.getLogger("ledger.sync")


def log_results(results: Iterable[SyncResult], *, retried: Iterable[str] = (), retry_in: float | None = None) -> None:
    """INFO for each sync done, ERROR for each failure, WARNING for a failure that will be tried
    again (members in `retried`, in `retry_in` seconds), naming the reason."""
    again = set(retried)
    for r in results:
        context = {"corp_num": r.corp_num, "kind": r.kind, "run_id": r.run_id, "status": r.status}
        if r.status != "failed":
            with logs.fields(**context):
                log.info("sync of %s %s %s: %s rows inserted, %s updated", r.corp_num, r.kind, r.status, r.inserted,
                         r.updated)  # fmt: skip
            continue
        with logs.fields(**context, error_class=r.error_class, popbill_code=r.popbill_code):
            if r.corp_num in again:
                log.warning("sync of %s %s failed, trying again in %.0f s: %s", r.corp_num, r.kind, retry_in or 0,
                            r.error)  # fmt: skip
            else:
                log.error("sync of %s %s failed: %s", r.corp_num, r.kind, r.error)
