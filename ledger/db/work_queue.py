"""Rows as a work queue: claimed one at a time, each in its own transaction."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, Engine, Row, TextClause


def each_due(engine: Engine, claim: TextClause, params: dict, *, limit: int) -> Iterator[tuple[Connection, Row]]:
    """Yield (connection, row) for rows `claim` selects (it ends in LIMIT 1 FOR UPDATE SKIP
    LOCKED, so concurrent workers never take the same row). The caller acts on the row with
    the connection; its transaction commits when the caller asks for the next row. `params`
    is bound afresh for every claim, so the caller may update it (say, rows already seen)."""
    with engine.connect() as conn:
        for _ in range(limit):
            row = conn.execute(claim, params).one_or_none()
            if row is None:
                conn.rollback()
                return
            yield conn, row
            conn.commit()
