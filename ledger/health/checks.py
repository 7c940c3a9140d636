"""What `ledger healthcheck` (and `python -m ledger.health`) and the watchdog check. Each check
returns None when healthy, or one line saying what is wrong.

A container runs the health check every minute, so it stays cheap: no SQLAlchemy, Celery or CLI
import. SQL goes through a `fetch(sql, params)` callable (psycopg for the health check, the
process's engine for the watchdog); the worker check asks this container's own worker node, by
name, through kombu's mailbox (what Celery's control uses), and the worker answers with its own
view of the database (ledger.health.worker_hooks)."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable

from ledger.kst import KST
from ledger.settings import Settings

Fetch = Callable[[str, dict], tuple | None]
PING_TIMEOUT = 2.0
HEALTH_COMMAND = "ledger_health"  # a remote control command of the worker (worker_hooks)
DEFAULT_NODE = "ledger@%h"


def engine_fetch(engine) -> Fetch:
    def fetch(sql: str, params: dict):
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql, params).first()

    return fetch


def libpq_url(settings: Settings) -> str:
    """The database URL as libpq reads it (SQLAlchemy's `+driver` dropped)."""
    if settings.database_url is None:
        from ledger.db.engine import database_url  # lazy: SQLAlchemy, for the embedded server, rare in a container

        url = database_url(settings)
    else:
        url = settings.database_url.reveal()
    scheme, sep, rest = url.partition("://")
    return ("postgresql" if scheme.split("+")[0] in ("postgresql", "postgres") else scheme) + sep + rest


def psycopg_fetch(settings: Settings) -> Fetch:
    connection = None

    def fetch(sql: str, params: dict):
        nonlocal connection
        import psycopg  # lazy: the health check of a worker needs no database driver of its own

        if connection is None:
            connection = psycopg.connect(libpq_url(settings), connect_timeout=3, autocommit=True)
        return connection.execute(sql, params).fetchone()

    return fetch


def database(fetch: Fetch) -> str | None:
    try:
        fetch("SELECT 1", {})
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"database unreachable: {(reason[0] if reason else type(exc).__name__)[:200]}"
    return None


def node_name(settings: Settings) -> str:
    """This host's worker node, as `ledger worker` names it (%h, %n, %d as in Celery)."""
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    name = settings.worker_name or DEFAULT_NODE
    return name.replace("%h", host).replace("%n", short).replace("%d", domain)


def worker(settings: Settings, node: str | None = None) -> str | None:
    """This container's own worker node answers (not any worker of the cluster), and can reach
    the database itself."""
    # lazy: kombu costs a tenth of a second that the beat check does not need
    from kombu import Connection
    from kombu.pidbox import Mailbox

    node = node or node_name(settings)
    try:
        with Connection(settings.broker_url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)
            # The same mailbox as Celery's control (celery.app.control), so RabbitMQ sees the
            # same declarations.
            mailbox = Mailbox("celery", type="fanout", accept=["json"], serializer="json", queue_ttl=300.0,
                              reply_queue_ttl=300.0, queue_expires=10.0, reply_queue_expires=10.0,
                              queue_exclusive=True, queue_durable=False)  # fmt: skip
            replies = mailbox(conn)._broadcast(HEALTH_COMMAND, {}, destination=[node], reply=True,
                                               timeout=PING_TIMEOUT, limit=1)  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        return f"broker unreachable: {type(exc).__name__}"
    answer = next((r[node] for r in replies or [] if node in r), None)
    if answer is None:
        return f"worker {node} did not answer within {PING_TIMEOUT:.0f} s"
    if isinstance(answer, dict) and answer.get("error"):
        return f"worker {node}: {answer['error']}"
    return (answer or {}).get("database") if isinstance(answer, dict) else None


def beat(fetch: Fetch, settings: Settings, now: dt.datetime) -> str | None:
    row = fetch("SELECT started_at FROM heartbeats WHERE name = %(name)s", {"name": "beat"})
    if row is None:
        return "beat has never written a heartbeat"
    age = (now - row[0]).total_seconds()
    if age > settings.health_beat_max_age:
        return f"beat heartbeat is {age / 60:.1f} minutes old (limit {settings.health_beat_max_age / 60:.1f})"
    return None


_NOT_SYNCED_SINCE = """
    SELECT count(*) FROM members m
    CROSS JOIN (VALUES ('payments'), ('usage'), ('refunds')) AS k(kind)
    LEFT JOIN sync_states s ON s.member_id = m.id AND s.kind = k.kind
    WHERE m.active AND m.created_at < %(day_start)s
      AND (s.last_success_at IS NULL OR s.last_success_at < %(day_start)s)
"""


def nightly_sync(fetch: Fetch, settings: Settings, now: dt.datetime) -> str | None:
    """Past the configured hour (Korean time), every active member's histories must have synced
    since that Korean day began."""
    deadline = settings.health_sync_deadline
    if deadline is None or settings.schedule_sync.strip().lower() == "off":
        return None
    local = now.astimezone(KST)
    day = local.date() if local.time() >= deadline else local.date() - dt.timedelta(days=1)
    day_start = dt.datetime.combine(day, dt.time(0), tzinfo=KST)
    missing = fetch(_NOT_SYNCED_SINCE, {"day_start": day_start})[0]
    if missing:
        return (f"nightly sync not finished by {deadline.strftime('%H:%M')} KST on {day}: "
                f"{missing} member histories not synced since")  # fmt: skip
    return None


TARGETS = ("worker", "beat", "all")


def run(target: str, settings: Settings, *, fetch: Fetch | None = None, node: str | None = None,
        now: dt.datetime | None = None) -> list[str]:  # fmt: skip
    """The problems found. `worker` asks this host's worker node (which checks the database
    itself); `beat` reads beat's heartbeat; `all` does both and the nightly sync's deadline."""
    now = now or dt.datetime.now(dt.UTC)
    problems = []
    if target in ("worker", "all"):
        problems.append(worker(settings, node))
    if target in ("beat", "all"):
        fetch = fetch or psycopg_fetch(settings)
        problem = database(fetch)
        if problem:
            return [p for p in problems if p] + [problem]
        problems.append(beat(fetch, settings, now))
        if target == "all":
            problems.append(nightly_sync(fetch, settings, now))
    return [p for p in problems if p]
