"""A small page of history written with the sync's close: its rows sent as arrays in one
statement (no temporary table, no COPY), inserted where new, and a stored row written again
only when a mutable field of it moved (a payment's settle_state or state_dt, a refund's
state), with that change recorded. A row already stored and unchanged costs an index probe,
never a new row version: the nightly re-sync brings back each member's lookback (three
days), a handful of rows it already holds.

The statements are driver-level (psycopg's %(name)s), run on the close's connection
(ledger.db.driver), and commit nothing: the close commits them with the runs and states.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

from sqlalchemy.dialects import postgresql

from ledger import jsonutil
from ledger.history import identity
from ledger.history.models import Usage
from ledger.history.writer import WriteCounts, _MutableSpec
from ledger.popbill.models import UseHistory

# A kind's last page with at most this many rows waits for the close; a larger one is
# written as a page of its own (a COPY), as every page of a long window is.
SMALL_PAGE_ROWS = 200


def _array_type(model, column: str) -> str:
    return f"{model.__table__.c[column].type.compile(dialect=postgresql.dialect())}[]"


def _unnest(model, columns: tuple[str, ...]) -> str:
    arrays = ", ".join(f"CAST(%({c})s AS {_array_type(model, c)})" for c in columns)
    return f"unnest({arrays}) AS i({', '.join(columns)})"


_USAGE_COLUMNS = (
    "row_key", "occurrence", "tx_dt", "item_code", "tx_type", "tx_point", "balance", "service_user_id", "user_id",
    "user_name", "raw",
)  # fmt: skip
_INSERT_USAGE = f"""
    INSERT INTO usages (member_id, {", ".join(_USAGE_COLUMNS)}, first_seen_at, last_seen_at)
    SELECT %(m)s, i.*, %(seen_at)s, %(seen_at)s FROM {_unnest(Usage, _USAGE_COLUMNS)}
    ON CONFLICT (member_id, row_key, occurrence) DO NOTHING
"""


@dataclasses.dataclass(frozen=True)
class UsageRows:
    """A page of usage (wire dicts, screened) as the insert's arrays."""

    params: dict
    rows: int

    @classmethod
    def of(cls, rows: tuple, counter: identity.OccurrenceCounter) -> UsageRows:
        columns: dict[str, list] = {c: [] for c in _USAGE_COLUMNS}
        for raw in rows:
            key = identity.usage_key(raw)
            typed = UseHistory.from_wire(raw)
            for column, value in zip(columns.values(), (
                key, counter.next(key), typed.tx_dt, typed.item_code, typed.tx_type, typed.tx_point, typed.balance,
                typed.service_user_id, typed.user_id, typed.user_name, jsonutil.dumps(raw),
            ), strict=True):  # fmt: skip
                column.append(value)
        return cls(columns, len(rows))

    def write(self, db, member_id: int, seen_at: dt.datetime) -> WriteCounts:
        """db: a ledger.db.driver.Driver in the close's transaction."""
        inserted = db.execute_count(_INSERT_USAGE, {"m": member_id, "seen_at": seen_at, **self.params})
        return WriteCounts(inserted=inserted, unchanged=self.rows - inserted)


@functools.cache
def _merge(spec: _MutableSpec, typed: tuple[str, ...]) -> str:
    """The merge of a mutable kind's page (typed: the columns spec.values gives): new rows
    inserted; stored rows whose mutable fields moved updated (raw and last_seen_at with them);
    the others left alone. Returns every row written, with the mutable fields it had before
    (existed false: it is new)."""
    model, table = spec.model, spec.model.__tablename__
    columns = ("row_key", "occurrence", *typed, "raw")
    moved = " OR ".join(f"t.{f} IS DISTINCT FROM i.{f}" for f in spec.mutable)
    before = ", ".join(f"s.{f} AS before_{f}" for f in spec.mutable)
    statement = f"""
        WITH i AS (
            SELECT * FROM {_unnest(model, columns)}
        ), stored AS (
            SELECT t.id, t.row_key, t.occurrence, {", ".join(f"t.{f}" for f in spec.mutable)}
            FROM {table} t JOIN i USING (row_key, occurrence) WHERE t.member_id = %(m)s
        ), written AS (
            INSERT INTO {table} AS t (member_id, {", ".join(columns)}, first_seen_at, last_seen_at)
            SELECT %(m)s, i.*, %(seen_at)s, %(seen_at)s FROM i
            WHERE NOT EXISTS (SELECT 1 FROM stored t WHERE t.row_key = i.row_key AND t.occurrence = i.occurrence
                              AND NOT ({moved}))
            ON CONFLICT ON CONSTRAINT uq_{table}_member_id_row_key_occurrence DO UPDATE SET
                {", ".join(f"{f} = EXCLUDED.{f}" for f in spec.mutable)}, raw = EXCLUDED.raw,
                last_seen_at = EXCLUDED.last_seen_at
            RETURNING t.id, t.row_key, t.occurrence
        )
        SELECT w.id, CAST(w.row_key AS text) AS row_key, w.occurrence, s.id IS NOT NULL AS existed, {before}
        FROM written w LEFT JOIN stored s USING (row_key, occurrence)
    """
    return statement

_STATE_CHANGES = """
    INSERT INTO state_changes ({fk}, field, old_value, new_value, seen_at)
    SELECT * FROM unnest(CAST(%(ids)s AS bigint[]), CAST(%(fields)s AS text[]), CAST(%(old)s AS text[]),
                         CAST(%(new)s AS text[]), CAST(%(seen)s AS timestamptz[]))
"""


@dataclasses.dataclass(frozen=True)
class MutableRows:
    """A page of payments or refunds (typed rows) as the merge's arrays."""

    spec: _MutableSpec
    typed: tuple[str, ...]  # the columns spec.values gives, in its order
    params: dict
    incoming: dict  # (row_key, occurrence) -> the page's values of the row

    @classmethod
    def of(cls, spec: _MutableSpec, rows: tuple, counter: identity.OccurrenceCounter) -> MutableRows:
        params: dict[str, list] = {}
        incoming, typed = {}, ()
        for row in rows:
            key = identity.row_key(row.raw, spec.key_fields)
            fields = spec.values(row)
            typed = tuple(fields)
            values = {"row_key": key, "occurrence": counter.next(key), **fields, "raw": jsonutil.dumps(row.raw)}
            for column, value in values.items():
                params.setdefault(column, []).append(value)
            incoming[(key, values["occurrence"])] = values
        return cls(spec, typed, params, incoming)

    def write(self, db, member_id: int, seen_at: dt.datetime) -> WriteCounts:
        """db: a ledger.db.driver.Driver in the close's transaction."""
        statement = _merge(self.spec, self.typed)
        written = db.execute(statement, {"m": member_id, "seen_at": seen_at, **self.params})
        counts = WriteCounts(unchanged=len(self.incoming) - len(written))
        changes: dict[str, list] = {"ids": [], "fields": [], "old": [], "new": [], "seen": []}
        for row in written:
            if not row.existed:
                counts.inserted += 1
                continue
            counts.updated += 1
            values = self.incoming[(row.row_key, row.occurrence)]
            for field in self.spec.mutable:
                old, new = getattr(row, f"before_{field}"), values[field]
                if old != new:
                    for column, value in zip(changes.values(), (row.id, field, _as_text(old), _as_text(new), seen_at),
                                             strict=True):  # fmt: skip
                        column.append(value)
        if changes["ids"]:
            db.execute(_STATE_CHANGES.format(fk=self.spec.change_fk), changes)
        return counts


def _as_text(value) -> str | None:
    """As ledger.history.writer records a change (a datetime in ISO form)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
