"""Broker options, apart from the app: the healthcheck pings workers through a bare app made
with them, without loading the tasks or the worker's signal handlers."""

from __future__ import annotations

from ledger.settings import Settings


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "redis+socket://"))


def broker_options(settings: Settings) -> dict:
    """RabbitMQ: publisher confirms, so a task handed to the broker is on its disk before
    .delay() returns (without them a broker crash lost a just-queued task). Redis: the
    visibility timeout after which a dead worker's task is delivered again."""
    if not is_redis(settings.broker_url):
        return {"confirm_publish": True}
    return {
        "visibility_timeout": settings.broker_visibility_timeout,
        # Sweep for the tasks of dead workers every few seconds, one Redis scan a sweep.
        "unacked_restore_interval": max(1, min(10, settings.broker_visibility_timeout // 3)),
        "unacked_restore_throttle": 1,
    }
