"""One alert per (subject, rule), with Alertmanager's semantics:

- it fires after the condition held for K consecutive checks;
- while firing it is re-notified every repeat interval, never more often;
- it resolves only once the value clears the threshold by the hysteresis margin, so a
  balance hovering at the threshold does not flap;
- a failed check sets it to 'unknown', which is never taken as OK;
- a muted subject's alerts still move, but send nothing until the mute expires.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from sqlalchemy import Connection, Row, select
from sqlalchemy.dialects.postgresql import insert

from ledger.alerts.models import Alert, AlertMute
from ledger.alerts.outbox import enqueue
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


def muted(conn: Connection, subject: str, now: dt.datetime) -> bool:
    until = conn.execute(select(AlertMute.until).where(AlertMute.subject == subject)).scalar()
    return until is not None and until > now


def evaluate(conn: Connection, check: Check, settings: Settings, now: dt.datetime) -> str | None:
    """Move the alert for one check; returns the notification kind sent, if any."""
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
    if notify and muted(conn, check.subject, now):
        notify = None
    if notify:
        changes["last_notified_at"] = now
        text = f"[{notify.upper()}] {check.rule} {check.subject}: {check.summary or 'balance check failed'}"
        enqueue(conn, settings, alert_id=alert.id, kind=notify, text=text, now=now,
                payload={"subject": check.subject, "rule": check.rule, "state": changes["state"],
                         "value": check.value, "threshold": check.threshold})  # fmt: skip
    conn.execute(Alert.__table__.update().where(Alert.id == alert.id).values(**changes))
    return notify
