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


def due_batches(
    engine: Engine, claim: TextClause, params: dict, *, limit: int
) -> Iterator[tuple[Connection, list[Row]]]:
    """As each_due, a batch at a time: `claim` ends in LIMIT :batch FOR UPDATE SKIP LOCKED, and
    the caller may work on the batch's rows at once (say, their Popbill calls in parallel)
    before the next claim commits its writes. At most `limit` rows in all."""
    taken = 0
    with engine.connect() as conn:
        while taken < limit:
            rows = conn.execute(claim, {**params, "batch": min(params["batch"], limit - taken)}).all()
            if not rows:
                conn.rollback()
                return
            taken += len(rows)
            yield conn, rows
            conn.commit()
