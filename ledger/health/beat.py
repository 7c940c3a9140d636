"""Celery beat's scheduler, writing a heartbeat row as it ticks (at most every few seconds)."""

from __future__ import annotations

import logging
import time

from celery.beat import PersistentScheduler

from ledger import context
from ledger.health.heartbeat import beat_tick

log = logging.getLogger(__name__)


class HeartbeatScheduler(PersistentScheduler):
    _last_beat = 0.0

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        # At most one write per loop interval: a busy schedule must not write on every send.
        if time.monotonic() - self._last_beat >= self.app.conf.beat_max_loop_interval:
            try:
                beat_tick(context.engine())
                self._last_beat = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - beat keeps sending while the database is away
                log.warning("could not write beat's heartbeat: %s", type(exc).__name__)
        return interval
