"""The one settings object. Nothing else in the project reads os.environ."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

from ledger.errors import UserInputError
from ledger.secret import Secret

# Credentials the simulator accepts out of the box, so that the zero-setup demo and the
# tests need no Popbill account. They open nothing real.
SANDBOX_LINK_ID = "LEDGER_SANDBOX"
SANDBOX_SECRET_KEY = "bGVkZ2VyLXNhbmRib3gtc2VjcmV0LWtleS0wMDAwMDA="

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(UserInputError):
    """A configuration value is missing or malformed; the message names the variable."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise SettingsError(f"{name} must be {bounds}, got {raw!r}")
    return value


def _decimal(env: Mapping[str, str], name: str, default: str) -> Decimal:
    raw = env.get(name) or default
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise SettingsError(f"{name} must be a decimal number, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise SettingsError(f"{name} must be zero or more, got {raw!r}")
    if value > Decimal("1e12"):  # more points than any balance: a typo such as 1e9999
        raise SettingsError(f"{name} must be at most 1000000000000, got {raw!r}")
    return value


def _date(env: Mapping[str, str], name: str, default: dt.date) -> dt.date:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from None


def _schedule(env: Mapping[str, str], name: str, default: str) -> str:
    """'off', an interval ('600s', '10m', '2h'), or a five-field crontab in Korean time."""
    raw = (env.get(name) or default).strip()
    if raw.lower() == "off" or parse_interval(raw) is not None or len(raw.split()) == 5:
        return raw
    raise SettingsError(f"{name} must be 'off', an interval such as 600s or 10m, or a crontab, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
    raw = (env.get(name) or default).strip()
    value = raw.upper() if upper else raw.lower()
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return value


def _url(env: Mapping[str, str], name: str) -> Secret | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        # Not echoed: the URL may carry credentials.
        raise SettingsError(f"{name} must be an http:// or https:// URL")
    return Secret(raw.rstrip("/"))


def _clock_time(env: Mapping[str, str], name: str, default: str) -> dt.time | None:
    """'HH:MM' (Korean time), or 'off'."""
    raw = (env.get(name) or default).strip()
    if raw.lower() == "off":
        return None
    try:
        return dt.time.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a time of day such as 06:00, or off, got {raw!r}") from None


def parse_interval(text: str) -> float | None:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if len(text) >= 2 and text[-1] in units:
        try:
            value = float(text[:-1])
        except ValueError:
            return None
        return value * units[text[-1]] if value > 0 else None
    return None


# Linkhub SecretKeys are 32 random bytes, base64-encoded (44 characters ending in '=').
SECRET_KEY_BYTES = 32


def _secret_key(env: Mapping[str, str]) -> Secret:
    raw = (env.get("POPBILL_SECRET_KEY") or "").strip() or SANDBOX_SECRET_KEY
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        # The message never repeats the value: it is a secret even when malformed.
        raise SettingsError(
            "POPBILL_SECRET_KEY is not valid base64 (copy the SecretKey exactly as Popbill issued it)"
        ) from None
    if len(decoded) != SECRET_KEY_BYTES:
        raise SettingsError(
            f"POPBILL_SECRET_KEY decodes to {len(decoded)} bytes, a Linkhub SecretKey has {SECRET_KEY_BYTES}"
        )
    return Secret(raw)


def is_linkhub_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "linkhub.co.kr" or host.endswith(".linkhub.co.kr")


def _default_home() -> Path:
    data_home = Path.home() / ".local" / "share"
    return data_home / "popbill-ledger"


@dataclasses.dataclass(frozen=True)
class Settings:
    link_id: str = SANDBOX_LINK_ID
    secret_key: Secret = dataclasses.field(default_factory=lambda: Secret(SANDBOX_SECRET_KEY))
    is_test: bool = True
    ip_restrict: bool = True
    use_static_ip: bool = False
    use_ga_ip: bool = False
    use_local_time: bool = True  # false: sign requests and judge token expiry by Popbill's clock (GET /Time)
    api_url: str | None = None
    auth_url: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retry_attempts: int = 5
    retry_max_seconds: float = 60.0
    retry_backoff: float = 0.5
    # Bounds on what an answer may cost us, whoever is on the other end (issue 12).
    max_response_bytes: int = 16 * 2**20  # on the wire; a full page of 1,000 rows is ~0.3 MB
    max_decoded_bytes: int = 32 * 2**20  # after gzip: a gzip bomb stops here
    call_deadline: float = 120.0  # seconds for one API call, every attempt and byte included
    max_pages: int = 10_000  # pages one listing may declare (10M rows at 1,000 a page)
    row_max_points: Decimal = Decimal("10000000000")  # no amount in a history row is larger
    row_earliest_date: dt.date = dt.date(2000, 1, 1)  # no history row is dated earlier
    row_max_future_days: int = 2  # nor later than the sync's today plus this (clock skew)
    # Calls in flight to Popbill from one process, all threads together. Popbill publishes no
    # figure; 16 keeps a 60 ms round trip at ~250 calls/s (3,000+ members a minute).
    max_concurrency: int = 16
    sync_members_per_task: int = 50  # the nightly fan-out's group size: 100,000 members = 2,000 tasks
    sync_jobs_per_task: int = 8  # members of a group synced at once (each mostly waits on Popbill)
    ledger_home: Path = dataclasses.field(default_factory=_default_home)
    database_url: Secret | None = None
    reader_password: Secret | None = None  # for `ledger db create-reader`, never on its command line
    sync_lookback_days: int = 3
    sync_window_days: int = 31
    sync_initial_days: int = 365
    sync_per_page: int = 1000
    # RabbitMQ: a killed worker's task returns at once and queued tasks survive a broker crash
    # (README "Reliability"); redis://... works too, with AOF and a visibility timeout.
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    broker_visibility_timeout: int = 7200
    task_time_limit: int = 3600
    db_retry_attempts: int = 8  # a sync that lost the database tries again this many times...
    db_retry_seconds: float = 120.0  # ...within this long, with jittered exponential backoff
    catch_up_grace: int = 900  # a sync due this long ago and not yet succeeded is enqueued again
    schedule_sync: str = "0 2 * * *"  # crontab in Korean time, an interval like '600s', or 'off'
    schedule_pending: str = "600s"
    schedule_catch_up: str = "300s"
    schedule_balances: str = "1800s"
    schedule_reconcile: str = "30 3 * * *"
    schedule_retention: str = "0 5 * * *"  # the prune, after the sync (02:00) and reconcile (03:30)
    # Retention (ledger.retention): how long rows that grow with every run, check and tick are kept.
    retention_runs_days: int = 90  # sync_runs; the last run and last success per member and kind stay
    retention_snapshots_full_days: int = 30  # every balance reading; then the last of each Korean day
    retention_snapshots_days: int = 400  # one reading a day; then none (the latest per member stays); 0: forever
    retention_outbox_days: int = 30  # notifications sent; unsent and failed ones are never pruned
    retention_heartbeats_days: int = 30  # heartbeats of tasks no longer scheduled
    retention_claims_days: int = 14  # schedule_claims; the newest per job stays
    retention_batch_rows: int = 5000  # rows deleted per transaction
    pending_first_poll: int = 600  # seconds; then doubling
    pending_max_interval: int = 21600
    pending_stuck_after: int = 3 * 86400
    pending_unknown_grace: int = 900  # a request not in the history this long after it was sent never registered
    partner_corp_num: str | None = None
    alert_threshold: Decimal = Decimal("10000")
    partner_threshold: Decimal = Decimal("100000")
    alert_runway_days: int = 7
    alert_consecutive: int = 1
    alert_repeat_seconds: int = 4 * 3600
    alert_hysteresis: Decimal = Decimal("0.10")
    alert_webhook_url: Secret | None = None  # Slack-style URLs carry a token
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: Secret | None = None
    smtp_starttls: bool = False
    mail_from: str = "ledger@localhost"
    mail_to: tuple[str, ...] = ()
    reconcile_match_days: int = 2  # how far a deposit's credit may be from its stateDT
    reconcile_refund_days: int = 30  # how long after the request a refund's debit may come
    reconcile_max_sync_age: int = 26 * 3600  # a ledger older than this is stale, never reconciled
    alertmanager_url: Secret | None = None  # may carry basic-auth credentials
    alert_webhook_timeout: float = 10.0
    metrics_per_member: bool = True
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"
    log_format: str = "text"  # or 'json'
    log_level: str | None = None  # None: WARNING for commands, INFO for the worker and beat
    health_beat_max_age: int = 300  # seconds without a beat heartbeat before beat counts as down
    health_sync_deadline: dt.time | None = dt.time(6, 0)  # Korean time the nightly sync must be done by
    watchdog_interval: int = 60
    worker_soft_shutdown_timeout: float = 10.0
    lang: str = "en"  # headers and labels of reports and exports: en or ko

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        database_url = env.get("LEDGER_DATABASE_URL") or None
        home = env.get("LEDGER_HOME")
        return cls(
            link_id=env.get("POPBILL_LINK_ID") or SANDBOX_LINK_ID,
            secret_key=_secret_key(env),
            is_test=_flag(env, "POPBILL_IS_TEST", True),
            ip_restrict=_flag(env, "POPBILL_IP_RESTRICT", True),
            use_static_ip=_flag(env, "POPBILL_USE_STATIC_IP", False),
            use_ga_ip=_flag(env, "POPBILL_USE_GA_IP", False),
            use_local_time=_flag(env, "POPBILL_USE_LOCAL_TIME", True),
            api_url=(env.get("POPBILL_API_URL") or None),
            auth_url=(env.get("LINKHUB_AUTH_URL") or None),
            connect_timeout=_number(env, "POPBILL_CONNECT_TIMEOUT", 5.0, minimum=0.001),
            read_timeout=_number(env, "POPBILL_READ_TIMEOUT", 60.0, minimum=0.001),
            retry_attempts=_integer(env, "POPBILL_RETRY_ATTEMPTS", 5, minimum=1),
            retry_max_seconds=_number(env, "POPBILL_RETRY_MAX_SECONDS", 60.0, minimum=0),
            retry_backoff=_number(env, "POPBILL_RETRY_BACKOFF", 0.5, minimum=0),
            max_response_bytes=_integer(env, "POPBILL_MAX_RESPONSE_BYTES", 16 * 2**20, minimum=1024),
            max_decoded_bytes=_integer(env, "POPBILL_MAX_DECODED_BYTES", 32 * 2**20, minimum=1024),
            call_deadline=_number(env, "POPBILL_CALL_DEADLINE", 120.0, minimum=0.001),
            max_pages=_integer(env, "POPBILL_MAX_PAGES", 10_000, minimum=1),
            row_max_points=_decimal(env, "LEDGER_ROW_MAX_POINTS", "10000000000"),
            row_earliest_date=_date(env, "LEDGER_ROW_EARLIEST_DATE", dt.date(2000, 1, 1)),
            row_max_future_days=_integer(env, "LEDGER_ROW_MAX_FUTURE_DAYS", 2, minimum=0),
            max_concurrency=_integer(env, "POPBILL_MAX_CONCURRENCY", 16, minimum=1, maximum=1000),
            sync_members_per_task=_integer(env, "LEDGER_SYNC_MEMBERS_PER_TASK", 50, minimum=1, maximum=10000),
            sync_jobs_per_task=_integer(env, "LEDGER_SYNC_JOBS_PER_TASK", 8, minimum=1, maximum=256),
            ledger_home=Path(home).expanduser() if home else _default_home(),
            database_url=Secret(database_url) if database_url else None,
            reader_password=Secret(env["LEDGER_READER_PASSWORD"]) if env.get("LEDGER_READER_PASSWORD") else None,
            sync_lookback_days=_integer(env, "LEDGER_SYNC_LOOKBACK_DAYS", 3, minimum=0),
            sync_window_days=_integer(env, "LEDGER_SYNC_WINDOW_DAYS", 31, minimum=1),
            sync_initial_days=_integer(env, "LEDGER_SYNC_INITIAL_DAYS", 365, minimum=0),
            sync_per_page=_integer(env, "LEDGER_SYNC_PER_PAGE", 1000, minimum=1, maximum=1000),
            broker_url=env.get("LEDGER_BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672//",
            broker_visibility_timeout=_integer(env, "LEDGER_BROKER_VISIBILITY_TIMEOUT", 7200, minimum=1),
            task_time_limit=_integer(env, "LEDGER_TASK_TIME_LIMIT", 3600, minimum=1),
            db_retry_attempts=_integer(env, "LEDGER_DB_RETRY_ATTEMPTS", 8, minimum=1),
            db_retry_seconds=_number(env, "LEDGER_DB_RETRY_SECONDS", 120.0, minimum=0),
            catch_up_grace=_integer(env, "LEDGER_CATCH_UP_GRACE", 900, minimum=0),
            schedule_sync=_schedule(env, "LEDGER_SCHEDULE_SYNC", "0 2 * * *"),
            schedule_pending=_schedule(env, "LEDGER_SCHEDULE_PENDING", "600s"),
            schedule_catch_up=_schedule(env, "LEDGER_SCHEDULE_CATCH_UP", "300s"),
            schedule_balances=_schedule(env, "LEDGER_SCHEDULE_BALANCES", "1800s"),
            schedule_reconcile=_schedule(env, "LEDGER_SCHEDULE_RECONCILE", "30 3 * * *"),
            schedule_retention=_schedule(env, "LEDGER_SCHEDULE_RETENTION", "0 5 * * *"),
            retention_runs_days=_integer(env, "LEDGER_RETENTION_RUNS_DAYS", 90, minimum=7, maximum=36500),
            retention_snapshots_full_days=_integer(env, "LEDGER_RETENTION_SNAPSHOTS_FULL_DAYS", 30, minimum=2,
                                                   maximum=36500),
            retention_snapshots_days=_integer(env, "LEDGER_RETENTION_SNAPSHOTS_DAYS", 400, minimum=0, maximum=36500),
            retention_outbox_days=_integer(env, "LEDGER_RETENTION_OUTBOX_DAYS", 30, minimum=1, maximum=36500),
            retention_heartbeats_days=_integer(env, "LEDGER_RETENTION_HEARTBEATS_DAYS", 30, minimum=1, maximum=36500),
            retention_claims_days=_integer(env, "LEDGER_RETENTION_CLAIMS_DAYS", 14, minimum=2, maximum=36500),
            retention_batch_rows=_integer(env, "LEDGER_RETENTION_BATCH_ROWS", 5000, minimum=1, maximum=100_000),
            pending_first_poll=_integer(env, "LEDGER_PENDING_FIRST_POLL", 600, minimum=0),
            pending_max_interval=_integer(env, "LEDGER_PENDING_MAX_INTERVAL", 21600, minimum=1),
            pending_stuck_after=_integer(env, "LEDGER_PENDING_STUCK_AFTER", 3 * 86400, minimum=1),
            pending_unknown_grace=_integer(env, "LEDGER_PENDING_UNKNOWN_GRACE", 900, minimum=1),
            partner_corp_num=env.get("LEDGER_PARTNER_CORP_NUM") or None,
            alert_threshold=_decimal(env, "LEDGER_ALERT_THRESHOLD", "10000"),
            partner_threshold=_decimal(env, "LEDGER_PARTNER_THRESHOLD", "100000"),
            alert_runway_days=_integer(env, "LEDGER_ALERT_RUNWAY_DAYS", 7, minimum=0),
            alert_consecutive=_integer(env, "LEDGER_ALERT_CONSECUTIVE", 1, minimum=1),
            alert_repeat_seconds=_integer(env, "LEDGER_ALERT_REPEAT_SECONDS", 4 * 3600, minimum=1),
            alert_hysteresis=_decimal(env, "LEDGER_ALERT_HYSTERESIS", "0.10"),
            alert_webhook_url=Secret(env["LEDGER_ALERT_WEBHOOK_URL"]) if env.get("LEDGER_ALERT_WEBHOOK_URL") else None,
            smtp_host=env.get("LEDGER_SMTP_HOST") or None,
            smtp_port=_integer(env, "LEDGER_SMTP_PORT", 25, minimum=1, maximum=65535),
            smtp_user=env.get("LEDGER_SMTP_USER") or None,
            smtp_password=Secret(env["LEDGER_SMTP_PASSWORD"]) if env.get("LEDGER_SMTP_PASSWORD") else None,
            smtp_starttls=_flag(env, "LEDGER_SMTP_STARTTLS", False),
            mail_from=env.get("LEDGER_MAIL_FROM") or "ledger@localhost",
            mail_to=tuple(a.strip() for a in (env.get("LEDGER_MAIL_TO") or "").split(",") if a.strip()),
            reconcile_match_days=_integer(env, "LEDGER_RECONCILE_MATCH_DAYS", 2, minimum=0),
            reconcile_refund_days=_integer(env, "LEDGER_RECONCILE_REFUND_DAYS", 30, minimum=0),
            reconcile_max_sync_age=_integer(env, "LEDGER_RECONCILE_MAX_SYNC_AGE", 26 * 3600, minimum=1),
            alertmanager_url=_url(env, "LEDGER_ALERTMANAGER_URL"),
            alert_webhook_timeout=_number(env, "LEDGER_ALERT_WEBHOOK_TIMEOUT", 10.0, minimum=0.001),
            metrics_per_member=_flag(env, "LEDGER_METRICS_PER_MEMBER", True),
            worker_metrics_port=_integer(env, "LEDGER_WORKER_METRICS_PORT", 0, minimum=0, maximum=65535) or None,
            worker_metrics_host=env.get("LEDGER_WORKER_METRICS_HOST") or "127.0.0.1",
            log_format=_choice(env, "LEDGER_LOG_FORMAT", "text", ("text", "json")),
            log_level=_choice(env, "LEDGER_LOG_LEVEL", "", ("", "DEBUG", "INFO", "WARNING", "ERROR"), upper=True) or None,
            health_beat_max_age=_integer(env, "LEDGER_HEALTH_BEAT_MAX_AGE", 300, minimum=1),
            health_sync_deadline=_clock_time(env, "LEDGER_HEALTH_SYNC_DEADLINE", "06:00"),
            watchdog_interval=_integer(env, "LEDGER_WATCHDOG_INTERVAL", 60, minimum=1),
            worker_soft_shutdown_timeout=_number(env, "LEDGER_WORKER_SOFT_SHUTDOWN_TIMEOUT", 10.0, minimum=0),
            lang=_choice(env, "LEDGER_LANG", "en", ("en", "ko")),
        )

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
