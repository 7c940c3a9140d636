"""Celery task of the pending poller."""

from __future__ import annotations

from celery import shared_task

from ledger import context
from ledger.alerts.outbox import deliver
from ledger.alerts.service import review_stuck
from ledger.pending.service import poll_due
from ledger.scheduling.service import claim
from ledger.sync.tasks import sync_member_task


@shared_task(name="ledger.pending.poll")
def poll_pending(from_beat: bool = True) -> int:
    """Poll due codes; when one settles, sync that member's payment or refund history."""

    settings, engine = context.settings(), context.engine()
    if from_beat and not claim(engine, "pending", settings.schedule_pending):
        return 0
    outcomes = poll_due(engine, context.client(), settings)
    for outcome in {(o.corp_num, o.history) for o in outcomes if o.final}:
        sync_member_task.delay(*outcome)
    review_stuck(engine, settings)
    deliver(engine, settings)
    return len(outcomes)
