"""A pooled connection's own psycopg connection, for statements run many times a second.

Through SQLAlchemy's execution layer a small statement cost the client several times what
the driver itself does (about 0.5 ms against 0.06 ms of CPU, measured), so the sync's start
and close go to the driver directly, on a connection borrowed from the engine's pool (the
same pool, the same ping after idling). Driver errors are raised as SQLAlchemy's, as
everywhere else (ledger.db.transient knows them), and a connection the driver found broken
is dropped from the pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError


class Driver:
    def __init__(self, pooled) -> None:
        self._pooled = pooled
        self.conn: psycopg.Connection = pooled.driver_connection

    @property
    def info(self) -> dict:
        """Kept with the pooled connection for its life (SQLAlchemy's Connection.info is the same dict)."""
        return self._pooled.info

    def execute(self, statement: str, params: dict | None = None) -> list:
        """The rows as named tuples (none for a statement that returns none)."""
        return self._run(statement, params)[0]

    def execute_count(self, statement: str, params: dict | None = None) -> int:
        """The rows the statement touched."""
        return self._run(statement, params)[1]

    def _run(self, statement: str, params: dict | None) -> tuple[list, int]:
        try:
            with self.conn.cursor(row_factory=namedtuple_row) as cursor:
                cursor.execute(statement, params)  # prepared on the server by psycopg from the fifth use
                rows = cursor.fetchall() if cursor.description is not None else []
                return rows, cursor.rowcount
        except psycopg.Error as exc:
            raise self._error(statement, params, exc) from exc

    def commit(self) -> None:
        try:
            self.conn.commit()
        except psycopg.Error as exc:
            raise self._error("COMMIT", None, exc) from exc

    def _error(self, statement: str, params: dict | None, exc: psycopg.Error) -> DBAPIError:
        return DBAPIError.instance(
            statement, params, exc, psycopg.Error, hide_parameters=True, connection_invalidated=self.broken
        )

    @property
    def broken(self) -> bool:
        return self.conn.closed or self.conn.broken


@contextlib.contextmanager
def borrowed(engine: Engine) -> Iterator[Driver]:
    """A pooled connection for one transaction, given back to the pool after (which rolls back
    what was not committed), or dropped if the driver found it broken."""
    try:
        pooled = engine.raw_connection()
    except psycopg.Error as exc:  # raw_connection raises the driver's own: raised as SQLAlchemy's, as connect() does
        raise DBAPIError.instance("connect", None, exc, psycopg.Error, connection_invalidated=True) from exc
    driver = Driver(pooled)
    try:
        yield driver
    finally:
        if driver.broken:
            pooled.invalidate()
        pooled.close()
