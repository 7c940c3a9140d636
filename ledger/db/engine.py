"""Engines and sessions, for the configured server or the embedded one."""

from __future__ import annotations

import select
import time

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from ledger import jsonutil
from ledger.db.embedded import embedded_url
from ledger.settings import Settings, SettingsError


def database_url(settings: Settings) -> str:
    if settings.database_url is None:

        return embedded_url(settings.ledger_home)
    url = settings.database_url.reveal()
    try:
        parsed = make_url(url)
    except Exception:
        raise SettingsError("LEDGER_DATABASE_URL is not a database URL") from None
    # postgres:// is what Heroku, Render and psql users write; SQLAlchemy users expect it to work.
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise SettingsError("LEDGER_DATABASE_URL must be a PostgreSQL URL (postgresql://... or postgres://...)")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


POOL_SIZE = 15


def make_engine(settings: Settings, **kwargs) -> Engine:
    # hide_parameters: a failing statement's error must not echo row values into logs.
    # At most 15 connections, as SQLAlchemy's default 5 + 10 overflow, but all kept once
    # opened: overflow ones were closed on return and opened again at the next burst of
    # writes (a PostgreSQL backend started for a statement or two, many times a second).
    kwargs = {"pool_size": POOL_SIZE, "max_overflow": 0, **kwargs}
    engine = create_engine(database_url(settings), hide_parameters=True, json_serializer=jsonutil.dumps, **kwargs)
    _ping_when_idle(engine)
    return engine


# A pooled connection is pinged before use only when it sat idle for longer than this, or
# when the server wrote to it while it was idle (what a terminated backend or a server
# shutting down does last; seen without a round trip). Pinging each checkout
# (pool_pre_ping) was a round trip and a server transaction for every borrow, several per
# synced member, on connections handed back milliseconds before. A connection cut in those
# milliseconds without a word fails its statement instead, which the callers handle like
# any loss of the database (ledger.db.transient).
PING_AFTER_IDLE_SECONDS = 1.0


def _server_wrote(dbapi_connection) -> bool:
    """Whether the idle connection's socket has something to read (an error, or EOF)."""
    try:
        fd = dbapi_connection.pgconn.socket
        return bool(select.select([fd], [], [], 0)[0])
    except Exception:
        return True  # closed, or not a psycopg connection: let the ping tell


def _ping_when_idle(engine: Engine) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def returned(dbapi_connection, record) -> None:
        if record is not None:
            record.info["ledger.returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def borrowed(dbapi_connection, record, proxy) -> None:
        returned_at = record.info.get("ledger.returned_at")
        if returned_at is None:
            return  # connected just now
        if time.monotonic() - returned_at <= PING_AFTER_IDLE_SECONDS and not _server_wrote(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("the pooled connection is gone") from exc  # the pool connects anew
