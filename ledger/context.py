"""One settings object, engine and Popbill client per process, for tasks and long-running
commands. Both the engine and the client are thread-safe (Celery runs tasks in threads)."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from ledger.db.engine import make_engine
from ledger.metrics import process as process_metrics
from ledger.popbill import PopbillClient
from ledger.settings import Settings

_lock = threading.Lock()
_settings: Settings | None = None
_engine: Engine | None = None
_client: PopbillClient | None = None


def settings() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.from_env()
        return _settings


def engine() -> Engine:
    global _engine
    current = settings()
    with _lock:
        if _engine is None:

            _engine = make_engine(current)
        return _engine


def client() -> PopbillClient:
    global _client
    current = settings()
    with _lock:
        if _client is None:
            _client = PopbillClient(current, observer=process_metrics.observe_call)
        return _client


def use(chosen: Settings) -> None:
    """Run on these settings instead of the environment's (embedding apps, tests)."""
    global _settings
    reset()
    with _lock:
        _settings = chosen


def reset() -> None:
    """Forget everything (after a fork, or between tests)."""
    global _settings, _engine, _client
    with _lock:
        if _engine is not None:
            _engine.dispose()
        if _client is not None:
            _client.close()
        _settings = _engine = _client = None
