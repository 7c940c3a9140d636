"""The dead man's switch, run on the worker side (not by beat, which may be what stopped):
'beat_down' fires when beat's heartbeat is too old, 'nightly_sync_late' when the nightly sync
has not finished by its hour; both through the same alert rules, grouping and channels (with
Alertmanager configured, Prometheus's rules of the same names page instead: the ledger's own
channels then carry no alerts). The same thread re-posts the open alerts to Alertmanager every
LEDGER_ALERTMANAGER_REPOST seconds, so they stay active while any worker runs, beat or not."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from sqlalchemy import Engine

from ledger.alerts import grouping
from ledger.alerts.alertmanager import push_quietly
from ledger.alerts.outbox import deliver
from ledger.alerts.rules import Check, evaluate
from ledger.alerts.service import BEAT_DOWN, SYNC_LATE
from ledger.health import checks
from ledger.scheduling.service import claim
from ledger.settings import Settings

log = logging.getLogger(__name__)


def review(engine: Engine, settings: Settings, *, now: dt.datetime | None = None) -> list[str]:
    """Move the two watchdog alerts; returns the rules that are firing now."""
    now = now or dt.datetime.now(dt.UTC)
    fetch = checks.engine_fetch(engine)
    beat_problem = checks.beat(fetch, settings, now)
    sync_problem = checks.nightly_sync(fetch, settings, now)
    found = [
        Check("beat", BEAT_DOWN, None, beat_problem is not None, cleared=True,
              summary=beat_problem or "beat's heartbeat is fresh again"),
        Check("nightly_sync", SYNC_LATE, None, sync_problem is not None, cleared=True,
              summary=sync_problem or "the nightly sync has finished"),
    ]  # fmt: skip
    with engine.begin() as conn:
        events = [e for e in (evaluate(conn, check, settings, now) for check in found) if e]
        grouping.notify(conn, settings, events, now)
    return [c.rule for c in found if c.holds]


def review_once(engine: Engine, settings: Settings) -> None:
    """One round, claimed so that several workers raise the alert once."""
    if not claim(engine, "watchdog", f"{settings.watchdog_interval}s"):
        return
    review(engine, settings)
    deliver(engine, settings)
    push_quietly(engine, settings)


def start(engine_factory, settings: Settings) -> threading.Event:
    """Run review_once every watchdog interval, and re-post to Alertmanager every repost interval
    (at once first: a worker starting after an outage renews the leases that lapsed), in a daemon
    thread; set the event to stop it."""
    stop = threading.Event()
    repost = settings.alertmanager_repost if settings.alertmanager_url else None

    def loop() -> None:
        clock = time.monotonic
        next_review, next_post = clock() + settings.watchdog_interval, clock()
        while True:
            if repost and clock() >= next_post:
                next_post = clock() + repost
                try:
                    push_quietly(engine_factory(), settings)
                except Exception:  # noqa: BLE001 - a database outage must not kill the watchdog
                    log.exception("re-posting alerts to Alertmanager failed")
            if clock() >= next_review:
                next_review = clock() + settings.watchdog_interval
                try:
                    review_once(engine_factory(), settings)
                except Exception:  # noqa: BLE001
                    log.exception("watchdog round failed")
            if stop.wait(max(0.05, min(next_review, next_post if repost else next_review) - clock())):
                return

    threading.Thread(target=loop, name="ledger-watchdog", daemon=True).start()
    return stop
