"""One alert per (subject, rule), with Alertmanager's semantics:

- it fires after the condition held for K consecutive checks;
- while firing it is re-notified every repeat interval, never more often;
- it resolves only once the value clears the threshold by the hysteresis margin, so a
  balance hovering at the threshold does not flap;
- a failed check sets it to 'unknown', which is never taken as OK;
- a silenced alert still moves, but sends nothing until the silence ends;
- evaluate() only moves the alert and says what changed (an Event); the caller groups the
  events of a check run into one notification per channel and rule (ledger.alerts.grouping).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
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


def _alert(conn: Connection, check: Check) -> Row:
    """The alert's row, created if new, locked for this check."""
    conn.execute(
        insert(Alert)
        .values(subject=check.subject, rule=check.rule, member_id=check.member_id)
        .on_conflict_do_nothing(constraint="uq_alerts_subject_rule")
    )
    row = conn.execute(
        select(Alert.__table__).where(Alert.subject == check.subject, Alert.rule == check.rule).with_for_update()
    ).one()
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
    """Move the alert for one check; returns the event to notify, if any (none when silenced)."""
    alert = _alert(conn, check)
    incident_open = alert.fired_at is not None and alert.resolved_at is None
    changes: dict = {"checked_at": now, "updated_at": now}
    notify = None
    if check.holds is None:
        changes["state"] = "unknown"
        if alert.state != "unknown":
            notify = "unknown"
    else:
        changes.update(value=check.value, threshold=check.threshold, summary=check.summary)
        if check.holds:
            consecutive = alert.consecutive + 1
            changes["consecutive"] = consecutive
            if incident_open:
                changes["state"] = "firing"
                if alert.last_notified_at is None or now - alert.last_notified_at >= dt.timedelta(
                    seconds=settings.alert_repeat_seconds
                ):
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
    if notify and silenced(conn, check.subject, check.rule, now):
        notify = None
    if notify:
        changes["last_notified_at"] = now
    conn.execute(Alert.__table__.update().where(Alert.id == alert.id).values(**changes))
    if not notify:
        return None
    return Event(notify, alert.id, check.subject, check.rule, check.member_id,
                 check.summary or "the check failed", check.value, check.threshold)  # fmt: skip
