"""The Alertmanager channel: open incidents are posted to Alertmanager's /api/v2/alerts, again on
every delivery round while they last (Alertmanager resolves an alert nobody re-posts before its
endsAt), and once more with endsAt set when they resolve. Grouping, inhibition, silences and
routing to Slack, PagerDuty or e-mail are then Alertmanager's."""

from __future__ import annotations

import datetime as dt
import logging

import requests
from sqlalchemy import Engine, text

from ledger.settings import Settings

log = logging.getLogger("ledger.alerts")

# An alert not re-posted within this long is taken as resolved by Alertmanager; the outbox
# delivery (every minute) re-posts well within it.
FIRING_LEASE = dt.timedelta(minutes=5)
# How long a resolve keeps being re-posted, in case one post was lost.
RESOLVED_REPEAT = dt.timedelta(hours=1)
CRITICAL = {"popbill_unreachable", "beat_down", "nightly_sync_late"}

_ALERTS = text(
    """
    SELECT a.subject, a.rule, a.state, a.value, a.threshold, a.summary, a.fired_at, a.resolved_at,
           m.corp_num, m.name
    FROM alerts a LEFT JOIN members m ON m.id = a.member_id
    WHERE a.fired_at IS NOT NULL AND (a.resolved_at IS NULL OR a.resolved_at > :resolved_since)
    """
)


def alert_name(rule: str) -> str:
    return "Ledger" + "".join(part.capitalize() for part in rule.split("_"))


def payload(engine: Engine, now: dt.datetime) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(_ALERTS, {"resolved_since": now - RESOLVED_REPEAT}).all()
    posted = []
    for row in rows:
        labels = {"alertname": alert_name(row.rule), "rule": row.rule, "subject": row.subject,
                  "severity": "critical" if row.rule in CRITICAL else "warning", "service": "ledger"}  # fmt: skip
        if row.corp_num:
            labels["corp_num"] = row.corp_num
            labels["member"] = row.name or row.corp_num
        ends = row.resolved_at or now + FIRING_LEASE
        description = row.summary or ""
        if row.state == "unknown":
            description += " (the last check failed; still open until a check says otherwise)"
        posted.append({
            "labels": labels,
            "annotations": {"summary": f"{row.rule} {row.subject}", "description": description,
                            "value": "" if row.value is None else format(row.value, "f"),
                            "threshold": "" if row.threshold is None else format(row.threshold, "f")},
            "startsAt": row.fired_at.isoformat(),
            "endsAt": ends.isoformat(),
        })  # fmt: skip
    return posted


def push(engine: Engine, settings: Settings, *, now: dt.datetime | None = None) -> int:
    """Post every open incident (and the recently resolved); returns how many were posted.
    Raises RuntimeError, without the URL (it may carry credentials), when Alertmanager refuses."""
    if not settings.alertmanager_url:
        return 0
    alerts = payload(engine, now or dt.datetime.now(dt.UTC))
    if not alerts:
        return 0
    try:
        answer = requests.post(settings.alertmanager_url.reveal() + "/api/v2/alerts", json=alerts,
                               timeout=settings.alert_webhook_timeout)  # fmt: skip
    except requests.RequestException as exc:
        raise RuntimeError(f"Alertmanager unreachable: {type(exc).__name__}") from None
    if not 200 <= answer.status_code < 300:
        raise RuntimeError(f"Alertmanager answered HTTP {answer.status_code}: {answer.text[:200]}")
    return len(alerts)


def push_quietly(engine: Engine, settings: Settings) -> int:
    """For the scheduled rounds: a refusal is logged and retried at the next round."""
    try:
        return push(engine, settings)
    except RuntimeError as exc:
        log.error("could not post alerts to Alertmanager: %s", exc)
        return 0
