"""Celery tasks of the alerts: the balance check and the outbox."""

from __future__ import annotations

from celery import shared_task

from ledger import context
from ledger.alerts.alertmanager import push_quietly
from ledger.alerts.outbox import deliver
from ledger.alerts.service import check_balances
from ledger.scheduling.service import claim


@shared_task(name="ledger.alerts.check_balances")
def check_balances_task(from_beat: bool = True) -> int:
    settings, engine = context.settings(), context.engine()
    if from_beat and not claim(engine, "balances", settings.schedule_balances):
        return 0
    readings = check_balances(engine, context.client(), settings)
    deliver(engine, settings)
    push_quietly(engine, settings)
    return len(readings)


@shared_task(name="ledger.alerts.deliver")
def deliver_outbox() -> dict:
    """Retry what a channel refused earlier, and re-post open incidents to Alertmanager (every minute)."""
    engine, settings = context.engine(), context.settings()
    counts = deliver(engine, settings)
    counts["alertmanager"] = push_quietly(engine, settings)
    return counts
