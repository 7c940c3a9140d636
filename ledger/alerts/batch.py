"""The alert rules for many checks at once, with the outcome of ledger.alerts.rules.evaluate
run on them one by one, in order: the same transition (rules.transition) on the same rows,
but the rows read and locked a few thousand at a time in one statement, the missing ones made
in one, the silences in force read once, and the changes written in one UPDATE ... FROM unnest.

A check run over every member moves most alerts without telling anyone (still ok, still
pending, firing inside the repeat interval). evaluate_quiet writes those in the caller's
(short) transaction and hands back the checks whose moves notify, which evaluate_many then
moves again from the row as it stands, in the one transaction that also enqueues their
notifications: a crash in between leaves those alerts unmoved, and the next run tells.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, text

from ledger.alerts.rules import Check, Event, event, transition
from ledger.settings import Settings

# Checks per statement: each statement carries this many (subject, rule) pairs as arrays.
CHECKS_PER_STATEMENT = 5000

_COLUMNS = ("id", "subject", "rule", "member_id", "state", "consecutive", "value", "threshold", "summary", "fired_at",
            "last_notified_at", "resolved_at", "checked_at", "updated_at")  # fmt: skip
_LISTED = ", ".join(f"a.{c}" for c in _COLUMNS)
# What a transition may change, and the type of each column's array.
_WRITTEN = {"state": "text", "consecutive": "integer", "value": "numeric", "threshold": "numeric", "summary": "text",
            "fired_at": "timestamptz", "last_notified_at": "timestamptz", "resolved_at": "timestamptz",
            "checked_at": "timestamptz", "updated_at": "timestamptz"}  # fmt: skip

# Locked in the order of their ids, as every batch locks them: two runs at once wait, never deadlock.
_LOCK = text(
    f"""
    SELECT {_LISTED} FROM alerts AS a
    JOIN unnest(CAST(:subjects AS text[]), CAST(:rules AS text[])) AS k(subject, rule)
      ON a.subject = k.subject AND a.rule = k.rule
    ORDER BY a.id FOR UPDATE OF a
    """
)
# Only the missing pairs: an insert that finds its row there still spends a value of the id sequence.
_CREATE = text(
    f"""
    INSERT INTO alerts AS a (subject, rule, member_id)
    SELECT * FROM unnest(CAST(:subjects AS text[]), CAST(:rules AS text[]), CAST(:members AS integer[]))
    ON CONFLICT ON CONSTRAINT uq_alerts_subject_rule DO NOTHING
    RETURNING {_LISTED}
    """
)
_WRITE = text(
    f"""
    UPDATE alerts AS a SET {", ".join(f"{c} = u.{c}" for c in _WRITTEN)}
    FROM unnest(CAST(:id AS integer[]), {", ".join(f"CAST(:{c} AS {t}[])" for c, t in _WRITTEN.items())})
      AS u(id, {", ".join(_WRITTEN)})
    WHERE a.id = u.id
    """
)
_SILENCES = text("SELECT subject, rule FROM alert_silences WHERE starts_at <= :now AND ends_at > :now")


class Silences:
    """The silences in force at `now`, read once when first asked (rules.silenced, in Python)."""

    def __init__(self, conn: Connection, now: dt.datetime) -> None:
        self.conn, self.now = conn, now
        self._matching: set[tuple[str | None, str | None]] | None = None

    def match(self, subject: str, rule: str) -> bool:
        if self._matching is None:
            self._matching = {tuple(row) for row in self.conn.execute(_SILENCES, {"now": self.now})}
        found = self._matching
        return (subject, rule) in found or (subject, None) in found or (None, rule) in found


@dataclasses.dataclass
class _Moved:
    """One alert's row as the checks of a batch leave it, and the events they made (in order)."""

    row: dict
    checks: list[tuple[int, Check]] = dataclasses.field(default_factory=list)
    events: list[tuple[int, Event]] = dataclasses.field(default_factory=list)


def _pairs(checks: Sequence[Check]) -> dict[tuple[str, str], int | None]:
    """Each (subject, rule) once, with the member of its first check (the one a new alert gets)."""
    pairs: dict[tuple[str, str], int | None] = {}
    for check in checks:
        pairs.setdefault((check.subject, check.rule), check.member_id)
    return pairs


def _lock(conn: Connection, pairs) -> dict[tuple[str, str], dict]:
    if not pairs:
        return {}
    subjects, rules = [s for s, _ in pairs], [r for _, r in pairs]
    rows = conn.execute(_LOCK, {"subjects": subjects, "rules": rules}).mappings()
    return {(row["subject"], row["rule"]): dict(row) for row in rows}


def _rows(conn: Connection, pairs: dict[tuple[str, str], int | None]) -> dict[tuple[str, str], dict]:
    """The pairs' rows, locked; the missing ones made (and so locked) first."""
    rows = _lock(conn, pairs)
    missing = [pair for pair in pairs if pair not in rows]
    if missing:
        params = {"subjects": [s for s, _ in missing], "rules": [r for _, r in missing],
                  "members": [pairs[pair] for pair in missing]}  # fmt: skip
        rows.update({(row["subject"], row["rule"]): dict(row) for row in conn.execute(_CREATE, params).mappings()})
        # Made meanwhile by another run's checks: their insert waited for it; lock them now.
        rows.update(_lock(conn, [pair for pair in missing if pair not in rows]))
    return rows


def _move(conn: Connection, checks: Sequence[Check], settings: Settings, now: dt.datetime,
          silences: Silences) -> dict[tuple[str, str], _Moved]:  # fmt: skip
    """Every check's transition, in order, each from the row as the checks before it left it."""
    rows = _rows(conn, _pairs(checks))
    moved = {pair: _Moved(row) for pair, row in rows.items()}
    for index, check in enumerate(checks):
        alert = moved[(check.subject, check.rule)]
        changes, notify = transition(alert.row, check, settings, now, lambda c=check: silences.match(c.subject, c.rule))
        alert.row.update(changes)
        alert.checks.append((index, check))
        if notify:
            alert.events.append((index, event(notify, alert.row["id"], check)))
    return moved


def _write(conn: Connection, moved: Sequence[_Moved]) -> None:
    if not moved:
        return
    params = {"id": [m.row["id"] for m in moved]}
    params.update({column: [m.row[column] for m in moved] for column in _WRITTEN})
    conn.execute(_WRITE, params)


def _chunks(checks: Sequence[Check]):
    for start in range(0, len(checks), CHECKS_PER_STATEMENT):
        yield start, checks[start : start + CHECKS_PER_STATEMENT]


def evaluate_many(conn: Connection, checks: Sequence[Check], settings: Settings, now: dt.datetime
                  ) -> list[Event | None]:  # fmt: skip
    """rules.evaluate for each check, in order: the event of each (None where there is none)."""
    silences = Silences(conn, now)
    found: list[Event | None] = [None] * len(checks)
    for start, chunk in _chunks(checks):
        moved = _move(conn, chunk, settings, now, silences)
        _write(conn, list(moved.values()))
        for alert in moved.values():
            for index, made in alert.events:
                found[start + index] = made
    return found


def evaluate_quiet(conn: Connection, checks: Sequence[Check], settings: Settings, now: dt.datetime) -> list[int]:
    """Write the moves that notify nobody; return the positions (in order) of the checks of
    the alerts whose moves would notify, left unwritten for evaluate_many in the transaction
    that sends them."""
    silences = Silences(conn, now)
    left: list[int] = []
    for start, chunk in _chunks(checks):
        moved = _move(conn, chunk, settings, now, silences)
        _write(conn, [alert for alert in moved.values() if not alert.events])
        left += [start + index for alert in moved.values() if alert.events for index, _ in alert.checks]
    return sorted(left)
