"""prune(): apply the retention rules in small batches, each its own short transaction.

A batch deletes at most `batch_rows` rows, locks them with SKIP LOCKED (a row some other
transaction holds is left for the next run, never waited on) and gives up within
LOCK_TIMEOUT when a table lock stands in its way (a migration, say): that rule stops there,
the report says so, and the next run goes on. The sync never waits on a batch: it inserts new
runs and readings and updates only its own `running` runs, which no rule selects.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from ledger.retention.policy import Cutoffs, Policy
from ledger.retention.rules import KEPT_HEARTBEATS, MEMBERS, PARTNERS, RULES, TABLES, Rule

LOCK_TIMEOUT = "1s"
STATEMENT_TIMEOUT = "300s"  # a batch is one index range per member of a chunk: seconds at most
MEMBERS_PER_CHUNK = 100  # members one statement reads: a night's thinning (~47 readings each) fits a batch
_GAVE_UP = {"55P03": f"a lock on the table was not free within {LOCK_TIMEOUT}",
            "57014": f"a batch took longer than {STATEMENT_TIMEOUT}"}  # fmt: skip

_NEXT_MEMBERS = text("SELECT id FROM members WHERE id > :after ORDER BY id LIMIT :n")
_PARTNER_CORPS = text("SELECT DISTINCT corp_num FROM balance_snapshots WHERE member_id IS NULL")


@dataclasses.dataclass
class Outcome:
    """One rule's result: rows deleted (or, in a dry run, that would be)."""

    rule: str
    table: str
    label: str
    what: str
    before: dt.datetime | None
    rows: int = 0
    batches: int = 0
    largest_batch: int = 0
    held: int = 0  # rows it would have deleted that another transaction held: left for the next run
    seconds: float = 0.0
    stopped: str | None = None  # why the rule stopped before it was done; the next run goes on


@dataclasses.dataclass
class Report:
    dry_run: bool
    cutoffs: Cutoffs
    outcomes: list[Outcome]
    seconds: float = 0.0

    def rows_by_table(self) -> dict[str, int]:
        totals = dict.fromkeys(TABLES, 0)
        for outcome in self.outcomes:
            totals[outcome.table] += outcome.rows
        return totals

    def summary(self) -> list[dict]:
        """One line per table and label (a rule for members and its twin for the partner add up)."""
        lines: dict[tuple[str, str], dict] = {}
        for o in self.outcomes:
            line = lines.setdefault((o.table, o.label), {"table": o.table, "rule": o.label, "before": o.before,
                                                         "rows": 0, "batches": 0, "held": 0, "stopped": None})  # fmt: skip
            line["rows"] += o.rows
            line["batches"] += o.batches
            line["held"] += o.held
            line["stopped"] = line["stopped"] or o.stopped
        return list(lines.values())

    @property
    def complete(self) -> bool:
        return not any(o.stopped for o in self.outcomes)


Progress = Callable[[Outcome, int], None]  # after each committed batch: the rule so far, the batch's rows


EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)


def bounds_for(rule: Rule, cutoffs: Cutoffs, mark: dt.datetime | None = None) -> dict:
    """The time range a rule reads: before its cutoff, and for a rule with a floor from the floor
    or from where its last complete run stopped (its mark), whichever is later."""
    bounds = {"before": getattr(cutoffs, rule.cutoff)}
    if rule.floor:
        floor = getattr(cutoffs, rule.floor) or EARLIEST
        bounds["after"] = max(floor, mark) if mark else floor
    return bounds


def params_for(rule: Rule, bounds: dict, chunk: list) -> dict:
    """The parameters of a rule's statements for one chunk of members (or partner CorpNums)."""
    params = dict(bounds)
    if rule.walk == MEMBERS:
        params["ids"] = chunk
    elif rule.walk == PARTNERS:
        params["corps"] = chunk
    if rule.name == "heartbeats":
        params["kept"] = list(KEPT_HEARTBEATS)
    return params


def _chunks(conn: Connection, rule: Rule) -> Iterator[list]:
    """The chunks of subjects a walked rule reads; one empty chunk for the others."""
    if rule.walk is None:
        yield []
    elif rule.walk == PARTNERS:
        corps = list(conn.execute(_PARTNER_CORPS).scalars())
        conn.rollback()
        if corps:
            yield corps
    else:
        after = 0
        while True:
            ids = list(conn.execute(_NEXT_MEMBERS, {"after": after, "n": MEMBERS_PER_CHUNK}).scalars())
            conn.rollback()
            if not ids:
                return
            yield ids
            after = ids[-1]


class Batch(NamedTuple):
    picked: int  # candidates found (up to the limit)
    deleted: int  # of them deleted (the others were held by another transaction)


def delete_batch(conn: Connection, rule: Rule, params: dict, limit: int) -> Batch:
    """Delete one batch of the rule's rows in conn's transaction, which the caller commits."""
    # A batch lost in a server crash is only deleted again by the next run: no WAL flush to wait for.
    conn.exec_driver_sql(
        f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'; "
        "SET LOCAL synchronous_commit = off"
    )
    return Batch(*conn.execute(text(rule.delete), {**params, "limit": limit}).one())


def _drain(conn: Connection, rule: Rule, bounds: dict, chunk: list, outcome: Outcome, limit: int,
           progress: Progress | None) -> None:  # fmt: skip
    """Delete the chunk's rows batch by batch. A batch reads the chunk's members from the
    first, so a chunk with more rows than a batch is halved rather than read again and again
    (a member with a year to thin ends up alone); a night's rows fit in one batch."""
    while True:
        batch = delete_batch(conn, rule, params_for(rule, bounds, chunk), limit)
        conn.commit()
        outcome.rows += batch.deleted
        outcome.held += batch.picked - batch.deleted
        outcome.batches += 1
        outcome.largest_batch = max(outcome.largest_batch, batch.deleted)
        if progress:
            progress(outcome, batch.deleted)
        if batch.picked < limit or batch.deleted == 0:  # done, or what is left is held by others: next run
            return
        if len(chunk) > 1:
            middle = len(chunk) // 2
            _drain(conn, rule, bounds, chunk[:middle], outcome, limit, progress)
            _drain(conn, rule, bounds, chunk[middle:], outcome, limit, progress)
            return


_MARK = text("SELECT done_before FROM retention_marks WHERE rule = :rule")
_ADVANCE_MARK = text(
    "INSERT INTO retention_marks (rule, done_before) VALUES (:rule, :before) ON CONFLICT (rule) DO UPDATE "
    "SET done_before = greatest(retention_marks.done_before, EXCLUDED.done_before), updated_at = now()"
)


def _apply(conn: Connection, rule: Rule, cutoffs: Cutoffs, outcome: Outcome, limit: int, dry_run: bool,
           progress: Progress | None) -> None:  # fmt: skip
    mark = conn.execute(_MARK, {"rule": rule.name}).scalar() if rule.resumable else None
    conn.rollback()
    bounds = bounds_for(rule, cutoffs, mark)
    for chunk in _chunks(conn, rule):
        if dry_run:
            outcome.rows += conn.execute(text(rule.count), params_for(rule, bounds, chunk)).scalar()
            conn.rollback()
        else:
            _drain(conn, rule, bounds, chunk, outcome, limit, progress)
    if rule.resumable and not dry_run and not outcome.held:
        # Every row before the cutoff is done: the next run need not read them again.
        conn.execute(_ADVANCE_MARK, {"rule": rule.name, "before": bounds["before"]})
        conn.commit()


def prune(
    engine: Engine, policy: Policy, *, now: dt.datetime | None = None, dry_run: bool = False,
    progress: Progress | None = None,
) -> Report:  # fmt: skip
    """Apply every rule; with dry_run, only count what would go."""
    started = dt.datetime.now(dt.UTC)
    cutoffs = policy.cutoffs(now or started)
    report = Report(dry_run, cutoffs, [])
    with engine.connect() as conn:
        for rule in RULES:
            before = getattr(cutoffs, rule.cutoff)
            outcome = Outcome(rule.name, rule.table, rule.label, rule.what, before)
            report.outcomes.append(outcome)
            if before is None:
                continue  # this rule is off
            began = time.monotonic()
            try:
                _apply(conn, rule, cutoffs, outcome, policy.batch_rows, dry_run, progress)
            except DBAPIError as exc:
                reason = _GAVE_UP.get(getattr(exc.orig, "sqlstate", None))
                if reason is None:
                    raise
                conn.rollback()
                outcome.stopped = f"{reason}; the next run goes on"
            outcome.seconds = time.monotonic() - began
    report.seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return report
