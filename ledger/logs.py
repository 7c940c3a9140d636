"""Logging for every ledger process: readable text by default, or one JSON object per line
(LEDGER_LOG_FORMAT=json, rendered by structlog) carrying corp_num, kind, run_id and task_id where
they apply. Every handler gets the redacting filter: no secret reaches a log at any level, not
even urllib3's DEBUG request lines (a Slack webhook's token is in its path)."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

import structlog

from ledger.settings import Settings

REDACTED = "[redacted]"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]*:[^/\s@]*@")
_URL_QUERY = re.compile(r"(?i)\b(https?://[^\s?#\"'<>]*)\?[^\s#\"'<>]*")
# urllib3: '%s://%s:%s "%s %s %s" %s %s' — the path and query of the request line.
_REQUEST_QUERY = re.compile(r"\"([A-Z]{3,7}) ([^\s?\"]*)\?[^\s\"]*")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secrets(values: Iterable[str | None]) -> None:
    """Strings that are replaced wherever they appear in a log line."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def _settings_secrets(settings: Settings) -> list[str]:
    values = [settings.secret_key.reveal()]
    for secret in (settings.alert_webhook_url, settings.alertmanager_url, settings.database_url):
        if not secret:
            continue
        url = secret.reveal()
        parts = urlsplit(url)
        if secret is settings.alert_webhook_url:
            values.append(url)  # the whole URL is the credential (Slack's are)
            if parts.path not in ("", "/"):
                values.append(parts.path + (f"?{parts.query}" if parts.query else ""))
                values.append(parts.path)
        if parts.password:
            values.append(parts.password)
    if settings.smtp_password:
        values.append(settings.smtp_password.reveal())
    return values


def redact(message: str) -> str:
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in message:
            message = message.replace(secret, REDACTED)
    message = _USERINFO.sub(rf"\1{REDACTED}@", message)
    message = _URL_QUERY.sub(rf"\1?{REDACTED}", message)
    return _REQUEST_QUERY.sub(rf'"\1 \2?{REDACTED}', message)


class RedactingFilter(logging.Filter):
    """Renders the record's message (and traceback) once, redacted, before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_ledger_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        elif record.exc_text:
            message += "\n" + record.exc_text
        if record.stack_info:
            message += "\n" + record.stack_info
        record.msg, record.args = redact(message), None
        record.exc_info = record.exc_text = record.stack_info = None
        record._ledger_redacted = True
        return True


_FILTER = RedactingFilter()


def guard(handler: logging.Handler) -> None:
    if _FILTER not in handler.filters:
        handler.addFilter(_FILTER)


def guard_all_handlers() -> None:
    """Every handler of every logger this process has, and Python's last-resort handler."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            guard(handler)
    if logging.lastResort is not None:
        guard(logging.lastResort)


def json_formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
    )


class TextFormatter(logging.Formatter):
    """Readable lines; the bound context (corp_num, kind, task_id...) follows the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = structlog.contextvars.get_contextvars()
        if context:
            line += " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]"
        return line


def configure(settings: Settings, *, default_level: str = "WARNING", stream=None) -> logging.Handler:
    """One handler on the root logger, in the chosen format and level, guarded by the filter."""
    register_secrets(_settings_secrets(settings))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_ledger", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._ledger = True
    handler.setFormatter(json_formatter() if settings.log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(settings.log_level or default_level)
    # Python's and Celery's warnings become records, in the same format as the rest.
    logging.captureWarnings(True)
    guard_all_handlers()
    return handler


def celery_quiet(settings: Settings) -> list[str]:
    """Celery's options for a worker or beat: in JSON mode no start-up banner (printed, not
    logged), so every line the process writes is one JSON object."""
    return ["--quiet"] if settings.log_format == "json" else []


def route_celery_prints(settings: Settings) -> None:
    """In JSON mode, the few lines Celery's worker writes straight to the terminal (the shutdown
    notices, from its signal handlers) become log records in the same format."""
    if settings.log_format != "json":
        return
    from celery.apps import worker as celery_worker  # lazy: Celery is loaded by the worker, not by every command

    said = logging.getLogger("celery.apps.worker")
    celery_worker.safe_say = lambda message, *_: said.warning("%s", str(message).strip())


@contextlib.contextmanager
def fields(**values):
    """Context for the log lines written inside the block (both formats show it)."""
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in values.items() if v is not None}):
        yield


def bind(**fields) -> None:
    """Context carried by every log line of this thread (a task's id, the member and kind)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def unbind() -> None:
    structlog.contextvars.clear_contextvars()
