"""Celery task of the reconciliation (beat runs it after the nightly sync)."""

from __future__ import annotations

from celery import shared_task

from ledger import context
from ledger.alerts.outbox import deliver
from ledger.reconcile.service import reconcile
from ledger.scheduling.service import claim


@shared_task(name="ledger.reconcile.nightly")
def reconcile_task(from_beat: bool = True) -> int:
    settings, engine = context.settings(), context.engine()
    if from_beat and not claim(engine, "reconcile", settings.schedule_reconcile):
        return 0
    reports = reconcile(engine, settings)
    deliver(engine, settings)
    return sum(r.new for r in reports)
