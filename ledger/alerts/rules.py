"""One alert per (subject, rule), with Alertmanager's semantics:

- it fires after the condition held for K consecutive checks;
- while firing it is re-notified every repeat interval, never more often;
- it resolves only once the value clears the threshold by the hysteresis margin, so a
  balance hovering at the threshold does not flap;
- a failed check sets it to 'unknown', which is never taken as OK;
- a silenced alert still moves, but sends nothing until the silence ends;
- evaluate() only moves the alert and says what changed (an Event); the caller groups the
  events of a check run into one notification per channel and rule (ledger.alerts.grouping).

transition() is the state machine alone, on a row's values; evaluate() runs it for one check,
ledger.alerts.batch for thousands in a few statements.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal

from sqlalchemy import Connection, Row, or_, select
from sqlalchemy.dialects.postgresql import insert

from ledger.alerts.models import Alert, AlertSilence
from ledger.settings import Settings


@dataclasses.dataclass(frozen=True)
class Check:
    subject: str
    rule: str
    member_id: int | None
    holds: bool | None  # None: the check itself failed
    value: Decimal | None = None
    threshold: Decimal | None = None
    cleared: bool = False  # the value is past threshold x (1 + hysteresis): safe to resolve
    summary: str = ""


@dataclasses.dataclass(frozen=True)
class Event:
    """What one check did to an alert that someone should hear about."""

    kind: str  # firing (started), repeat (still firing), resolved, unknown (the check failed)
    alert_id: int
    subject: str
    rule: str
    member_id: int | None
    summary: str
    value: Decimal | None = None
    threshold: Decimal | None = None


def transition(alert: Mapping, check: Check, settings: Settings, now: dt.datetime,
               silenced: Callable[[], bool]) -> tuple[dict, str | None]:  # fmt: skip
    """The whole state machine, without a database: the columns of `alert` (a row's mapping)
    that one check changes, and what to notify (None: nothing). `silenced` is asked only when
    something would be sent."""
    incident_open = alert["fired_at"] is not None and alert["resolved_at"] is None
    changes: dict = {"checked_at": now, "updated_at": now}
    notify = None
    if check.holds is None:
        changes["state"] = "unknown"
        if alert["state"] != "unknown":
            notify = "unknown"
    else:
        changes.update(value=check.value, threshold=check.threshold, summary=check.summary)
        if check.holds:
            consecutive = alert["consecutive"] + 1
            changes["consecutive"] = consecutive
            if incident_open:
                changes["state"] = "firing"
                last = alert["last_notified_at"]
                if last is None or now - last >= dt.timedelta(seconds=settings.alert_repeat_seconds):
                    notify = "repeat"
            elif consecutive >= settings.alert_consecutive:
                changes.update(state="firing", fired_at=now, resolved_at=None)
                notify = "firing"
            else:
                changes["state"] = "pending"
        else:
            changes["consecutive"] = 0
            if incident_open and check.cleared:
                changes.update(state="ok", resolved_at=now)
                notify = "resolved"
            elif incident_open:
                changes["state"] = "firing"  # inside the hysteresis band: not resolved yet
            else:
                changes["state"] = "ok"
    if notify and silenced():
        notify = None
    if notify:
        changes["last_notified_at"] = now
    return changes, notify


def event(kind: str, alert_id: int, check: Check) -> Event:
    return Event(kind, alert_id, check.subject, check.rule, check.member_id, check.summary or "the check failed",
                 check.value, check.threshold)  # fmt: skip


def _alert(conn: Connection, check: Check) -> Row:
    """The alert's row, locked for this check; created if new (looked for first: an insert that
    finds the row there already still spends a value of the id sequence)."""
    locked = select(Alert.__table__).where(Alert.subject == check.subject, Alert.rule == check.rule).with_for_update()
    row = conn.execute(locked).first()
    if row is None:
        row = conn.execute(
            insert(Alert)
            .values(subject=check.subject, rule=check.rule, member_id=check.member_id)
            .on_conflict_do_nothing(constraint="uq_alerts_subject_rule")
            .returning(*Alert.__table__.c)
        ).first() or conn.execute(locked).one()  # made meanwhile by another check: wait for it, then lock it
    return row


def silenced(conn: Connection, subject: str, rule: str, now: dt.datetime) -> bool:
    """A silence in force matches the subject, the rule, or both."""
    matching = select(AlertSilence.id).where(
        AlertSilence.starts_at <= now,
        AlertSilence.ends_at > now,
        or_(AlertSilence.subject.is_(None), AlertSilence.subject == subject),
        or_(AlertSilence.rule.is_(None), AlertSilence.rule == rule),
    )
    return conn.execute(matching.limit(1)).first() is not None


def evaluate(conn: Connection, check: Check, settings: Settings, now: dt.datetime) -> Event | None:
    """Move the alert for one check; returns the event to notify, if any (none when silenced).
    Many checks at once: ledger.alerts.batch.evaluate_many, with the same outcome."""
    alert = _alert(conn, check)
    changes, notify = transition(alert._mapping, check, settings, now,
                                 lambda: silenced(conn, check.subject, check.rule, now))  # fmt: skip
    conn.execute(Alert.__table__.update().where(Alert.id == alert.id).values(**changes))
    return event(notify, alert.id, check) if notify else None
