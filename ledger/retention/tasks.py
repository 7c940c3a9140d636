"""Celery task of the retention prune (beat runs it nightly, after reconcile)."""

from __future__ import annotations

import logging

from celery import shared_task

from ledger import context
from ledger.retention.policy import Policy
from ledger.retention.service import prune
from ledger.scheduling.service import claim

log = logging.getLogger(__name__)


@shared_task(name="ledger.retention.prune")
def prune_task(from_beat: bool = True) -> dict[str, int]:
    settings, engine = context.settings(), context.engine()
    if from_beat and not claim(engine, "retention", settings.schedule_retention):
        return {}
    report = prune(engine, Policy.from_settings(settings))
    for outcome in report.outcomes:
        if outcome.stopped:
            log.warning("retention %s stopped after %d rows: %s", outcome.rule, outcome.rows, outcome.stopped)
    return report.rows_by_table()
