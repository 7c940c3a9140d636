"""The one settings object, declared once. Nothing else in the project reads os.environ.

Each field of `Settings` is declared with `setting(...)`: its environment variable, its one
default, its group, what it means, and the parser that checks a value when the settings are
loaded (a bad value is one line naming the variable). The README's settings tables are
generated from these declarations (ledger/settings_table.py), and a test keeps them equal.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import os
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ledger.errors import UserInputError
from ledger.secret import Secret

# Credentials the simulator accepts out of the box, so that the zero-setup demo and the
# tests need no Popbill account. They open nothing real.
SANDBOX_LINK_ID = "LEDGER_SANDBOX"
SANDBOX_SECRET_KEY = "bGVkZ2VyLXNhbmRib3gtc2VjcmV0LWtleS0wMDAwMDA="
# Linkhub SecretKeys are 32 random bytes, base64-encoded (44 characters ending in '=').
SECRET_KEY_BYTES = 32

# The README's tables, in this order.
GROUPS = {
    "popbill": "Popbill and Linkhub",
    "database": "Database",
    "sync": "Sync",
    "alerts": "Alerts and channels",
    "worker": "Worker, beat and schedules",
    "reports": "Reconciliation and reports",
    "retention": "Retention",
    "operations": "Metrics, health and logs",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(UserInputError):
    """A configuration value is missing or malformed; the message names the variable."""


Parser = Callable[[str, str], Any]  # (variable, raw text) -> value; raises SettingsError


# -- parsers: one per kind of value, each naming the variable in its error -----------------------


def text(name: str, raw: str) -> str:
    return raw.strip()


def flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def number(minimum: float = 0) -> Parser:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise SettingsError(f"{name} must be a finite number, got {raw!r}")
        if value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
        return value

    return parse


def whole(minimum: int, maximum: int | None = None) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise SettingsError(f"{name} must be {bounds}, got {raw!r}")
        return value

    return parse


def optional_port(name: str, raw: str) -> int | None:
    return whole(0, 65535)(name, raw) or None  # 0: off


def points(name: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise SettingsError(f"{name} must be a decimal number, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise SettingsError(f"{name} must be zero or more, got {raw!r}")
    if value > Decimal("1e12"):  # more points than any balance: a typo such as 1e9999
        raise SettingsError(f"{name} must be at most 1000000000000, got {raw!r}")
    return value


def whole_won(name: str, raw: str) -> Decimal:
    """Whole won, from 1 to 10^12."""
    value = points(name, raw)
    if value != value.to_integral_value() or not 1 <= value <= Decimal("1e12"):
        raise SettingsError(f"{name} must be whole won from 1 to 1000000000000, got {raw!r}")
    return value


def date(name: str, raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from None


def parse_interval(spec: str) -> float | None:
    """'600s', '10m', '2h', '1d' as seconds; None when it is not an interval."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    spec = spec.strip().lower()
    if len(spec) >= 2 and spec[-1] in units:
        try:
            value = float(spec[:-1])
        except ValueError:
            return None
        return value * units[spec[-1]] if value > 0 else None
    return None


def crontab_fields(spec: str) -> dict[str, str]:
    """A five-field crontab as Celery's crontab() keywords."""
    minute, hour, day_of_month, month_of_year, day_of_week = spec.split()
    return {"minute": minute, "hour": hour, "day_of_month": day_of_month, "month_of_year": month_of_year,
            "day_of_week": day_of_week}  # fmt: skip


def schedule(name: str, raw: str) -> str:
    """'off', an interval ('600s', '10m', '2h'), or a five-field crontab in Korean time, checked
    by Celery's own parser (so a value the worker would refuse is refused here, by name)."""
    value = raw.strip()
    if value.lower() == "off" or parse_interval(value) is not None:
        return value
    if len(value.split()) == 5:
        # lazy: Celery's parser costs a seventh of a second; only a crontab set in the environment pays it
        from celery.schedules import crontab

        try:
            crontab(**crontab_fields(value))
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{name}: not a crontab Celery accepts ({exc}), got {raw!r}") from None
        return value
    raise SettingsError(f"{name} must be 'off', an interval such as 600s or 10m, or a crontab, got {raw!r}")


def choice(*allowed: str, upper: bool = False) -> Parser:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in allowed:
            raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def log_level(name: str, raw: str) -> str | None:
    return choice("DEBUG", "INFO", "WARNING", "ERROR", upper=True)(name, raw)


def secret(name: str, raw: str) -> Secret:
    return Secret(raw)


def secret_url(name: str, raw: str) -> Secret:
    value = raw.strip()
    if not value.startswith(("http://", "https://")):
        # Not echoed: the URL may carry credentials.
        raise SettingsError(f"{name} must be an http:// or https:// URL")
    return Secret(value.rstrip("/"))


def clock_time(name: str, raw: str) -> dt.time | None:
    """'HH:MM' (Korean time), or 'off'."""
    value = raw.strip()
    if value.lower() == "off":
        return None
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{name} must be a time of day such as 06:00, or off, got {raw!r}") from None


def addresses(name: str, raw: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in raw.split(",") if a.strip())


def path(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def label(name: str, raw: str) -> str:
    """A Prometheus label value set on every alert: short, printable, no quotes."""
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,63}", value):
        raise SettingsError(f"{name} must be 1-63 letters, digits, '_', '.', ':' or '-', got {raw!r}")
    return value


def node_name(name: str, raw: str) -> str:
    """A Celery node name, name@host (%h stands for this host's name)."""
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.%-]+@[A-Za-z0-9_.%-]+", value):
        raise SettingsError(f"{name} must look like name@host (%h: this host), got {raw!r}")
    return value


def secret_key(name: str, raw: str) -> Secret:
    value = raw.strip()
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        # The message never repeats the value: it is a secret even when malformed.
        raise SettingsError(f"{name} is not valid base64 (copy the SecretKey exactly as Popbill issued it)") from None
    if len(decoded) != SECRET_KEY_BYTES:
        raise SettingsError(f"{name} decodes to {len(decoded)} bytes, a Linkhub SecretKey has {SECRET_KEY_BYTES}")
    return Secret(value)


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "popbill-ledger"


# -- declarations ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Declared:
    env: str
    group: str
    doc: str
    parse: Parser
    shown_default: str | None  # how the README shows the default, when not the value itself


def setting(env: str, default: Any = None, *, group: str, doc: str, parse: Parser = text, factory=None,
            shown: str | None = None):  # fmt: skip
    """A field of Settings, read from `env`; an unset or empty variable keeps the default."""
    meta = {"declared": Declared(env, group, doc, parse, shown)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Settings:
    # Popbill and Linkhub
    link_id: str = setting("POPBILL_LINK_ID", SANDBOX_LINK_ID, group="popbill",
                           doc="your LinkID (the default is the simulator's sandbox ID)")  # fmt: skip
    secret_key: Secret = setting("POPBILL_SECRET_KEY", group="popbill", parse=secret_key,
                                 factory=lambda: Secret(SANDBOX_SECRET_KEY), shown="sandbox key",
                                 doc="your base64 SecretKey (32 bytes); checked when any command starts; never logged")  # fmt: skip
    is_test: bool = setting("POPBILL_IS_TEST", True, group="popbill", parse=flag,
                            doc="test bed (`POPBILL_TEST`) or production (`POPBILL`)")  # fmt: skip
    ip_restrict: bool = setting("POPBILL_IP_RESTRICT", True, group="popbill", parse=flag,
                                doc="when false, tokens are requested with `x-lh-forwarded: *`")  # fmt: skip
    use_static_ip: bool = setting("POPBILL_USE_STATIC_IP", False, group="popbill", parse=flag,
                                  doc="the `static-` hosts")  # fmt: skip
    use_ga_ip: bool = setting("POPBILL_USE_GA_IP", False, group="popbill", parse=flag, doc="the `ga-` hosts")
    use_local_time: bool = setting(
        "POPBILL_USE_LOCAL_TIME", True, group="popbill", parse=flag,
        doc="when false, request dates, token expiry and the sync's \"today\" follow Popbill's clock "
            "(`GET /Time` on the auth host, measured every 10 minutes)",
    )  # fmt: skip
    api_url: str | None = setting("POPBILL_API_URL", group="popbill", shown="by the flags above",
                                  doc="override the Popbill API host (e.g. the simulator)")  # fmt: skip
    auth_url: str | None = setting("LINKHUB_AUTH_URL", group="popbill", shown="by the flags above",
                                   doc="override the Linkhub auth host")  # fmt: skip
    connect_timeout: float = setting("POPBILL_CONNECT_TIMEOUT", 5.0, group="popbill", parse=number(0.001),
                                     doc="seconds to connect, on every call")  # fmt: skip
    read_timeout: float = setting("POPBILL_READ_TIMEOUT", 60.0, group="popbill", parse=number(0.001),
                                  doc="seconds to wait for bytes, on every call")  # fmt: skip
    retry_attempts: int = setting("POPBILL_RETRY_ATTEMPTS", 5, group="popbill", parse=whole(1),
                                  doc="attempts of one call on a transient failure")  # fmt: skip
    retry_max_seconds: float = setting("POPBILL_RETRY_MAX_SECONDS", 60.0, group="popbill", parse=number(0),
                                       doc="seconds one call may spend retrying")  # fmt: skip
    retry_backoff: float = setting("POPBILL_RETRY_BACKOFF", 0.5, group="popbill", parse=number(0),
                                   doc="base backoff in seconds (jittered, doubling)")  # fmt: skip
    max_response_bytes: int = setting("POPBILL_MAX_RESPONSE_BYTES", 16 * 2**20, group="popbill", parse=whole(1024),
                                      shown="16 MiB",
                                      doc="size of one answer on the wire (a full page is ~0.3 MB)")  # fmt: skip
    max_decoded_bytes: int = setting("POPBILL_MAX_DECODED_BYTES", 32 * 2**20, group="popbill", parse=whole(1024),
                                     shown="32 MiB", doc="size of one answer once decoded: a gzip bomb stops here")  # fmt: skip
    call_deadline: float = setting("POPBILL_CALL_DEADLINE", 120.0, group="popbill", parse=number(0.001),
                                   doc="seconds for one API call, every attempt and byte included")  # fmt: skip
    max_pages: int = setting("POPBILL_MAX_PAGES", 10_000, group="popbill", parse=whole(1),
                             doc="pages one listing may declare (10M rows at 1,000 a page)")  # fmt: skip
    token_cache: str = setting(
        "POPBILL_TOKEN_CACHE", "auto", group="popbill",
        doc="where members' tokens are kept between processes until they expire (a file only its owner may read): "
            "`auto` (`LEDGER_HOME/popbill-tokens.sqlite3` for Linkhub's hosts, none for a simulator), a path, or `off`",
    )  # fmt: skip
    # Popbill publishes no figure; 16 keeps a 60 ms round trip at ~250 calls/s (3,000+ members a minute).
    max_concurrency: int = setting(
        "POPBILL_MAX_CONCURRENCY", 16, group="popbill", parse=whole(1, 1000),
        doc="calls in flight to Popbill per process, all threads together; a 429's `Retry-After` pauses them all",
    )  # fmt: skip

    # Database
    database_url: Secret | None = setting("LEDGER_DATABASE_URL", group="database", parse=secret,
                                          shown="embedded server",
                                          doc="`postgresql://user:pass@host/db`; never logged")  # fmt: skip
    ledger_home: Path = setting("LEDGER_HOME", group="database", parse=path, factory=_default_home,
                                shown="~/.local/share/popbill-ledger",
                                doc="where the embedded PostgreSQL (and beat's schedule file) live")  # fmt: skip
    reader_password: Secret | None = setting("LEDGER_READER_PASSWORD", group="database", parse=secret,
                                             doc="the password `ledger db create-reader` sets (else it asks)")  # fmt: skip
    reader_connection_limit: int = setting("LEDGER_READER_CONNECTION_LIMIT", 10, group="database",
                                           parse=whole(1, 10000),
                                           doc="connections the reader role may hold at once")  # fmt: skip
    db_retry_seconds: float = setting(
        "LEDGER_DB_RETRY_SECONDS", 120.0, group="database", parse=number(0),
        doc="a sync or command that lost the database tries again, with jittered backoff, for this long",
    )  # fmt: skip

    # Sync
    sync_lookback_days: int = setting("LEDGER_SYNC_LOOKBACK_DAYS", 3, group="sync", parse=whole(0),
                                      doc="days re-read before the high-water mark")  # fmt: skip
    sync_window_days: int = setting("LEDGER_SYNC_WINDOW_DAYS", 31, group="sync", parse=whole(1),
                                    doc="days per history query")  # fmt: skip
    sync_initial_days: int = setting("LEDGER_SYNC_INITIAL_DAYS", 365, group="sync", parse=whole(0),
                                     doc="how far back a first sync starts")  # fmt: skip
    sync_per_page: int = setting("LEDGER_SYNC_PER_PAGE", 1000, group="sync", parse=whole(1, 1000),
                                 doc="rows per page (1–1000)")  # fmt: skip
    sync_members_per_task: int = setting("LEDGER_SYNC_MEMBERS_PER_TASK", 50, group="sync", parse=whole(1, 10000),
                                         doc="members per task of the nightly fan-out")  # fmt: skip
    sync_jobs_per_task: int = setting("LEDGER_SYNC_JOBS_PER_TASK", 8, group="sync", parse=whole(1, 256),
                                      doc="members of one task synced at once (each mostly waits on Popbill)")  # fmt: skip
    row_max_points: Decimal = setting("LEDGER_ROW_MAX_POINTS", Decimal("10000000000"), group="sync", parse=points,
                                      doc="no amount in a history row is larger (larger rows are quarantined)")  # fmt: skip
    row_earliest_date: dt.date = setting("LEDGER_ROW_EARLIEST_DATE", dt.date(2000, 1, 1), group="sync", parse=date,
                                         doc="no history row is dated earlier")  # fmt: skip
    repair_windows: int = setting(
        "LEDGER_REPAIR_WINDOWS", 4, group="sync", parse=whole(0, 100),
        doc="windows per member a night's sync fetches again where reconciliation found a break (0: off)",
    )  # fmt: skip
    row_max_future_days: int = setting("LEDGER_ROW_MAX_FUTURE_DAYS", 2, group="sync", parse=whole(0),
                                       doc="nor later than the sync's today plus this (clock skew)")  # fmt: skip

    # Alerts and channels
    partner_corp_num: str | None = setting("LEDGER_PARTNER_CORP_NUM", group="alerts", shown="first active member",
                                           doc="the CorpNum used to read the partner balance")  # fmt: skip
    alert_threshold: Decimal = setting("LEDGER_ALERT_THRESHOLD", Decimal("10000"), group="alerts", parse=points,
                                       doc="low-balance threshold for members without their own")  # fmt: skip
    partner_threshold: Decimal = setting("LEDGER_PARTNER_THRESHOLD", Decimal("100000"), group="alerts", parse=points,
                                         doc="the partner's balance threshold")  # fmt: skip
    alert_runway_days: int = setting("LEDGER_ALERT_RUNWAY_DAYS", 7, group="alerts", parse=whole(0),
                                     doc="runway rule; `0` switches it off")  # fmt: skip
    alert_consecutive: int = setting("LEDGER_ALERT_CONSECUTIVE", 1, group="alerts", parse=whole(1),
                                     doc="checks the condition must hold before firing")  # fmt: skip
    alert_repeat_seconds: int = setting("LEDGER_ALERT_REPEAT_SECONDS", 4 * 3600, group="alerts", parse=whole(1),
                                        doc="repeat interval while firing")  # fmt: skip
    alert_hysteresis: Decimal = setting("LEDGER_ALERT_HYSTERESIS", Decimal("0.10"), group="alerts", parse=points,
                                        doc="resolve only above threshold × (1 + this)")  # fmt: skip
    alert_webhook_url: Secret | None = setting("LEDGER_ALERT_WEBHOOK_URL", group="alerts", parse=secret,
                                               doc="JSON POST with a Slack-compatible `text` field; never logged")  # fmt: skip
    alert_webhook_timeout: float = setting("LEDGER_ALERT_WEBHOOK_TIMEOUT", 10.0, group="alerts", parse=number(0.001),
                                           doc="seconds for a webhook or Alertmanager post")  # fmt: skip
    alertmanager_url: Secret | None = setting(
        "LEDGER_ALERTMANAGER_URL", group="alerts", parse=secret_url,
        doc="Alertmanager's base URL; may carry credentials, never logged. Set: per-member alerts go there, not to "
            "the webhook or mail",
    )  # fmt: skip
    alertmanager_repost: int = setting("LEDGER_ALERTMANAGER_REPOST", 60, group="alerts", parse=whole(1, 3600),
                                       doc="seconds between re-posts of the open alerts to Alertmanager")  # fmt: skip
    alertmanager_lease: int = setting(
        "LEDGER_ALERTMANAGER_LEASE", 900, group="alerts", parse=whole(2),
        doc="seconds a post keeps an alert active (`endsAt`); keep it above Prometheus's time to fire "
            "`LedgerNoWorker` and several re-posts",
    )  # fmt: skip
    deployment: str = setting("LEDGER_DEPLOYMENT", "ledger", group="alerts", parse=label,
                              doc="the `deployment` label of the ledger's alerts and silences; give Prometheus's "
                                  "targets the same")  # fmt: skip
    smtp_host: str | None = setting("LEDGER_SMTP_HOST", group="alerts", doc="mail server for alert mail")
    smtp_port: int = setting("LEDGER_SMTP_PORT", 25, group="alerts", parse=whole(1, 65535), doc="its port")
    smtp_user: str | None = setting("LEDGER_SMTP_USER", group="alerts", doc="login, if the server wants one")
    smtp_password: Secret | None = setting("LEDGER_SMTP_PASSWORD", group="alerts", parse=secret,
                                           doc="its password; never logged")  # fmt: skip
    # None until loaded: then true when a user is set (credentials never travel unencrypted).
    smtp_starttls: bool | None = setting(
        "LEDGER_SMTP_STARTTLS", None, group="alerts", parse=flag, shown="`true` when a user is set, else `false`",
        doc="STARTTLS: a server that does not offer it gets no AUTH, and no mail",
    )  # fmt: skip
    smtp_ssl: bool = setting("LEDGER_SMTP_SSL", False, group="alerts", parse=flag,
                             doc="SMTPS: TLS from the first byte (port 465)")  # fmt: skip
    smtp_insecure_plaintext_login: bool = setting(
        "LEDGER_SMTP_INSECURE_PLAINTEXT_LOGIN", False, group="alerts", parse=flag,
        doc="log in without TLS, on a link you trust; without it `ledger doctor` fails such a configuration",
    )  # fmt: skip
    mail_from: str = setting("LEDGER_MAIL_FROM", "ledger@localhost", group="alerts", doc="sender")
    mail_to: tuple[str, ...] = setting("LEDGER_MAIL_TO", (), group="alerts", parse=addresses, shown="none",
                                       doc="comma-separated recipients")  # fmt: skip

    # Worker, beat and schedules
    # RabbitMQ: a killed worker's task returns at once and queued tasks survive a broker crash
    # (README "Reliability"); redis://... works too, with AOF and a visibility timeout.
    broker_url: str = setting("LEDGER_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//", group="worker",
                              doc="Celery broker: RabbitMQ, or `redis://...` (see \"Reliability\")")  # fmt: skip
    broker_visibility_timeout: int = setting("LEDGER_BROKER_VISIBILITY_TIMEOUT", 7200, group="worker",
                                             parse=whole(1),
                                             doc="seconds; Redis only: keep it above the task time limit")  # fmt: skip
    task_time_limit: int = setting("LEDGER_TASK_TIME_LIMIT", 3600, group="worker", parse=whole(1),
                                   doc="seconds a task may run")  # fmt: skip
    catch_up_grace: int = setting("LEDGER_CATCH_UP_GRACE", 900, group="worker", parse=whole(0),
                                  doc="seconds after a scheduled sync before its unfinished work is enqueued again")  # fmt: skip
    schedule_sync: str = setting("LEDGER_SCHEDULE_SYNC", "0 2 * * *", group="worker", parse=schedule,
                                 doc="nightly sync (crontab, Korean time), an interval such as `600s`, or `off`")  # fmt: skip
    schedule_pending: str = setting("LEDGER_SCHEDULE_PENDING", "600s", group="worker", parse=schedule,
                                    doc="pending poll")  # fmt: skip
    schedule_catch_up: str = setting("LEDGER_SCHEDULE_CATCH_UP", "300s", group="worker", parse=schedule,
                                     doc="the catch-up of lost syncs")  # fmt: skip
    schedule_balances: str = setting("LEDGER_SCHEDULE_BALANCES", "1800s", group="worker", parse=schedule,
                                     doc="balance check")  # fmt: skip
    schedule_reconcile: str = setting("LEDGER_SCHEDULE_RECONCILE", "30 3 * * *", group="worker", parse=schedule,
                                      doc="nightly reconciliation")  # fmt: skip
    schedule_retention: str = setting("LEDGER_SCHEDULE_RETENTION", "0 5 * * *", group="worker", parse=schedule,
                                      doc="the retention prune, after the sync and reconciliation")  # fmt: skip
    pending_first_poll: int = setting("LEDGER_PENDING_FIRST_POLL", 600, group="worker", parse=whole(0),
                                      doc="seconds before an item's first poll; then doubling")  # fmt: skip
    pending_max_interval: int = setting("LEDGER_PENDING_MAX_INTERVAL", 21600, group="worker", parse=whole(1),
                                        doc="seconds between polls at most")  # fmt: skip
    pending_stuck_after: int = setting("LEDGER_PENDING_STUCK_AFTER", 3 * 86400, group="worker", parse=whole(1),
                                       doc="seconds pending before a \"stuck pending\" alert")  # fmt: skip
    pending_doubt_limit: int = setting(
        "LEDGER_PENDING_DOUBT_LIMIT", 3, group="worker", parse=whole(1, 1000),
        doc="doubtful answers in a row about one tracked item before `stuck_pending` fires, saying what Popbill "
            "answered",
    )  # fmt: skip
    money_max_won: Decimal = setting("LEDGER_MONEY_MAX_WON", Decimal("10000000"), group="worker",
                                     parse=whole_won,
                                     doc="the largest deposit or refund one request may ask for (whole won)")  # fmt: skip
    money_twin_window: int = setting("LEDGER_MONEY_TWIN_WINDOW", 600, group="worker", parse=whole(0, 604800),
                                     doc="seconds in which an identical money request is refused without `--force`")  # fmt: skip
    pending_unknown_grace: int = setting(
        "LEDGER_PENDING_UNKNOWN_GRACE", 900, group="worker", parse=whole(1),
        doc="seconds after which a request with an unknown outcome that is not in the history is `not_found`",
    )  # fmt: skip
    worker_soft_shutdown_timeout: float = setting("LEDGER_WORKER_SOFT_SHUTDOWN_TIMEOUT", 10.0, group="worker",
                                                  parse=number(0),
                                                  doc="seconds a SIGTERM'd worker lets its task finish")  # fmt: skip
    worker_name: str | None = setting("LEDGER_WORKER_NAME", group="worker", parse=node_name, shown="ledger@%h",
                                      doc="the worker's Celery node name (`%h`: this host)")  # fmt: skip

    # Reconciliation and reports
    reconcile_match_days: int = setting("LEDGER_RECONCILE_MATCH_DAYS", 2, group="reports", parse=whole(0),
                                        doc="how far a deposit's credit may be from its stateDT (days)")  # fmt: skip
    reconcile_refund_days: int = setting("LEDGER_RECONCILE_REFUND_DAYS", 30, group="reports", parse=whole(0),
                                         doc="how long after the request a refund's debit may come (days)")  # fmt: skip
    reconcile_max_sync_age: int = setting("LEDGER_RECONCILE_MAX_SYNC_AGE", 26 * 3600, group="reports",
                                          parse=whole(1),
                                          doc="seconds; a ledger older than this is stale, never reconciled")  # fmt: skip
    lang: str = setting("LEDGER_LANG", "en", group="reports", parse=choice("en", "ko"),
                        doc="`ko`: Korean headers and labels by default in statements, exports and the month "
                            "workbook (`--lang` overrides)")  # fmt: skip
    pdf_font: Path | None = setting("LEDGER_PDF_FONT", group="reports", parse=path,
                                    shown="NanumGothic, found on the system",
                                    doc="a TrueType font with Hangul for PDF statements (`.ttf`/`.ttc`)")  # fmt: skip

    # Retention (ledger.retention): how long rows that grow with every run, check and tick are kept
    retention_runs_days: int = setting(
        "LEDGER_RETENTION_RUNS_DAYS", 90, group="retention", parse=whole(7, 36500),
        doc="days of sync runs kept; each member and kind's last run and last success stay whatever their age",
    )  # fmt: skip
    retention_snapshots_full_days: int = setting(
        "LEDGER_RETENTION_SNAPSHOTS_FULL_DAYS", 30, group="retention", parse=whole(2, 36500),
        doc="days every balance reading is kept; older days keep their last reading (Korean days)",
    )  # fmt: skip
    retention_snapshots_days: int = setting(
        "LEDGER_RETENTION_SNAPSHOTS_DAYS", 400, group="retention", parse=whole(0, 36500),
        doc="days a reading a day is kept (`0`: forever); each member's latest and the one reconcile reads stay",
    )  # fmt: skip
    retention_outbox_days: int = setting("LEDGER_RETENTION_OUTBOX_DAYS", 30, group="retention",
                                         parse=whole(1, 36500),
                                         doc="days sent notifications are kept; unsent and failed ones stay")  # fmt: skip
    retention_heartbeats_days: int = setting("LEDGER_RETENTION_HEARTBEATS_DAYS", 30, group="retention",
                                             parse=whole(1, 36500),
                                             doc="days before the heartbeat of a task no longer scheduled goes")  # fmt: skip
    retention_claims_days: int = setting("LEDGER_RETENTION_CLAIMS_DAYS", 14, group="retention", parse=whole(2, 36500),
                                         doc="days of schedule claims kept; each job's newest stays")  # fmt: skip
    retention_batch_rows: int = setting("LEDGER_RETENTION_BATCH_ROWS", 5000, group="retention",
                                        parse=whole(1, 100_000), doc="rows deleted per transaction")  # fmt: skip

    # Metrics, health and logs
    metrics_per_member: bool = setting("LEDGER_METRICS_PER_MEMBER", True, group="operations", parse=flag,
                                       doc="per-member series on `/metrics/members`")  # fmt: skip
    metrics_sync_per_kind: bool = setting("LEDGER_METRICS_SYNC_PER_KIND", False, group="operations", parse=flag,
                                          doc="per member and kind sync times too (three more series a member)")  # fmt: skip
    metrics_refresh: int = setting("LEDGER_METRICS_REFRESH", 60, group="operations", parse=whole(1, 3600),
                                   doc="seconds between readings of what grows with the members")  # fmt: skip
    worker_metrics_port: int | None = setting("LEDGER_WORKER_METRICS_PORT", group="operations", parse=optional_port,
                                              shown="off", doc="port of the worker's process metrics (0: off)")  # fmt: skip
    worker_metrics_host: str = setting("LEDGER_WORKER_METRICS_HOST", "127.0.0.1", group="operations",
                                       doc="address they listen on")  # fmt: skip
    health_beat_max_age: int = setting("LEDGER_HEALTH_BEAT_MAX_AGE", 300, group="operations", parse=whole(1),
                                       doc="seconds without a beat heartbeat before beat counts as down")  # fmt: skip
    health_sync_deadline: dt.time | None = setting("LEDGER_HEALTH_SYNC_DEADLINE", dt.time(6, 0), group="operations",
                                                   parse=clock_time, shown="06:00",
                                                   doc="Korean time by which the nightly sync must be done, or `off`")  # fmt: skip
    watchdog_interval: int = setting("LEDGER_WATCHDOG_INTERVAL", 60, group="operations", parse=whole(1),
                                     doc="seconds between the worker's watchdog rounds")  # fmt: skip
    log_format: str = setting("LEDGER_LOG_FORMAT", "text", group="operations", parse=choice("text", "json"),
                              doc="`json` for one object per line")  # fmt: skip
    log_level: str | None = setting("LEDGER_LOG_LEVEL", group="operations", parse=log_level,
                                    shown="`WARNING` (worker and beat: `INFO`)",
                                    doc="`DEBUG`, `INFO`, `WARNING` or `ERROR`")  # fmt: skip

    def __post_init__(self) -> None:
        if self.smtp_starttls is None:  # frozen: set once, here, from the user
            object.__setattr__(self, "smtp_starttls", bool(self.smtp_user))
        # Settings that must agree with each other are refused when loaded, not at 05:00 by the prune.
        if self.retention_snapshots_days and self.retention_snapshots_days < self.retention_snapshots_full_days:
            raise SettingsError(
                f"LEDGER_RETENTION_SNAPSHOTS_DAYS ({self.retention_snapshots_days}) must be 0 (forever) or at least "
                f"LEDGER_RETENTION_SNAPSHOTS_FULL_DAYS ({self.retention_snapshots_full_days})"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from these variables (the process's environment by default). An unset or
        empty variable keeps its default; a bad one raises SettingsError naming it."""
        env = os.environ if env is None else env
        values = {}
        for field in dataclasses.fields(cls):
            declared: Declared = field.metadata["declared"]
            raw = env.get(declared.env)
            if raw is not None and raw.strip() != "":
                values[field.name] = declared.parse(declared.env, raw)
        return cls(**values)

    def with_hosts(self, base_url: str) -> Settings:
        """The same settings pointed at one host serving both auth and API paths (the simulator)."""
        return dataclasses.replace(self, api_url=base_url, auth_url=base_url)

    @property
    def uses_sandbox_credentials(self) -> bool:
        return self.link_id == SANDBOX_LINK_ID or self.secret_key.reveal() == SANDBOX_SECRET_KEY

    @property
    def real_hosts(self) -> list[str]:
        """Those of the auth and API hosts that are Linkhub's own (not a simulator)."""
        return [u for u in (self.resolved_auth_url, self.resolved_api_url) if is_linkhub_host(u)]

    @property
    def service_id(self) -> str:
        return "POPBILL_TEST" if self.is_test else "POPBILL"

    @property
    def resolved_api_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        prefix = "ga-" if self.use_ga_ip else "static-" if self.use_static_ip else ""
        host = "popbill-test.linkhub.co.kr" if self.is_test else "popbill.linkhub.co.kr"
        return f"https://{prefix}{host}"

    @property
    def resolved_auth_url(self) -> str:
        if self.auth_url:
            return self.auth_url.rstrip("/")
        prefix = "ga-" if self.use_ga_ip else "static-" if self.use_static_ip else ""
        return f"https://{prefix}auth.linkhub.co.kr"


def is_linkhub_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "linkhub.co.kr" or host.endswith(".linkhub.co.kr")


def declarations() -> list[tuple[dataclasses.Field, Declared]]:
    return [(f, f.metadata["declared"]) for f in dataclasses.fields(Settings)]
