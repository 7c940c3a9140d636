"""Engines and sessions, for the configured server or the embedded one."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from ledger import jsonutil
from ledger.settings import Settings, SettingsError


def database_url(settings: Settings) -> str:
    if settings.database_url is None:
        from ledger.db.embedded import embedded_url

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
    return create_engine(
        database_url(settings), hide_parameters=True, pool_pre_ping=True, json_serializer=jsonutil.dumps, **kwargs
    )
