"""The Alertmanager channel: the ledger's per-member alerts (low balance, runway, stuck pending,
Popbill unreachable) are posted to Alertmanager's /api/v2/alerts, again every repost interval
while they last, and once more with endsAt in the past when a check resolves them.

Who owns what (README "Operate it"): liveness (worker, beat, the nightly sync, the metrics
endpoint, members never synced) and the partner's balance belong to Prometheus's rules over the
metrics, so the ledger does not post them here; the ledger's own rules are the one source of the
per-member alerts, with one alertname per rule and one label set per alert.

A firing alert's endsAt is now + LEDGER_ALERTMANAGER_LEASE: long enough for Prometheus to report
that no worker is up (LedgerNoWorker) before it lapses, and that alert inhibits the ledger's
alerts of the same deployment, so a lease lapsing while the workers are down notifies nobody.
A resolve is told apart from a lapsed lease by its `resolved_at` annotation, which only a check
that saw the condition clear writes."""

from __future__ import annotations

import datetime as dt
import logging

import requests
from sqlalchemy import Engine, text

from ledger.settings import Settings

log = logging.getLogger("ledger.alerts")

# How long a resolve keeps being re-posted, in case one post was lost.
RESOLVED_REPEAT = dt.timedelta(hours=1)
CRITICAL = {"popbill_unreachable"}
# The rules whose alerts the ledger posts; the others have a Prometheus rule of the same name.
POSTED_RULES = ("low_balance", "runway", "stuck_pending", "popbill_unreachable")

_ALERTS = text(
    """
    SELECT a.subject, a.rule, a.state, a.value, a.threshold, a.summary, a.fired_at, a.resolved_at,
           a.checked_at, m.corp_num, m.name
    FROM alerts a LEFT JOIN members m ON m.id = a.member_id
    WHERE a.fired_at IS NOT NULL AND (a.resolved_at IS NULL OR a.resolved_at > :resolved_since)
      AND a.rule = ANY(:rules) AND a.subject <> 'partner'
    """
)


class AlertmanagerError(RuntimeError):
    """Alertmanager could not be reached or refused; the message never carries its URL."""


def alert_name(rule: str) -> str:
    return "Ledger" + "".join(part.capitalize() for part in rule.split("_"))


def labels(settings: Settings, rule: str, subject: str, corp_num: str | None) -> dict[str, str]:
    """The one label set of an alert: what identifies it, nothing that may change while it lasts
    (a member's name is an annotation: renaming a member must not end one alert and start another)."""
    found = {"alertname": alert_name(rule), "rule": rule, "subject": subject, "source": "ledger",
             "deployment": settings.deployment, "severity": "critical" if rule in CRITICAL else "warning"}  # fmt: skip
    if corp_num:
        found["corp_num"] = corp_num
    return found


def payload(engine: Engine, settings: Settings, now: dt.datetime) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(_ALERTS, {"resolved_since": now - RESOLVED_REPEAT, "rules": list(POSTED_RULES)}).all()
    lease_end = now + dt.timedelta(seconds=settings.alertmanager_lease)
    posted = []
    for row in rows:
        description = row.summary or ""
        if row.state == "unknown":
            description += " (the last check failed; still open until a check says otherwise)"
        annotations = {
            "summary": f"{row.rule} {row.subject}", "description": description,
            "value": "" if row.value is None else format(row.value, "f"),
            "threshold": "" if row.threshold is None else format(row.threshold, "f"),
            "state": "resolved" if row.resolved_at else row.state,
            "checked_at": row.checked_at.isoformat() if row.checked_at else "",
        }  # fmt: skip
        if row.name:
            annotations["member"] = row.name
        if row.resolved_at:
            annotations["resolved_at"] = row.resolved_at.isoformat()
        posted.append({
            "labels": labels(settings, row.rule, row.subject, row.corp_num),
            "annotations": annotations,
            "startsAt": row.fired_at.isoformat(),
            "endsAt": (row.resolved_at or lease_end).isoformat(),
        })  # fmt: skip
    return posted


def _request(settings: Settings, method: str, path: str, **kwargs) -> requests.Response:
    try:
        answer = requests.request(method, settings.alertmanager_url.reveal() + path,
                                  timeout=settings.alert_webhook_timeout, **kwargs)  # fmt: skip
    except requests.RequestException as exc:
        raise AlertmanagerError(f"Alertmanager unreachable: {type(exc).__name__}") from None
    if not 200 <= answer.status_code < 300:
        raise AlertmanagerError(f"Alertmanager answered HTTP {answer.status_code}: {answer.text[:200]}")
    return answer


def push(engine: Engine, settings: Settings, *, now: dt.datetime | None = None) -> int:
    """Post every open incident (and the recently resolved); returns how many were posted.
    Raises AlertmanagerError when Alertmanager cannot be reached or refuses."""
    if not settings.alertmanager_url:
        return 0
    alerts = payload(engine, settings, now or dt.datetime.now(dt.UTC))
    if alerts:
        _request(settings, "POST", "/api/v2/alerts", json=alerts)
    return len(alerts)


def push_quietly(engine: Engine, settings: Settings) -> int:
    """For the scheduled rounds: a refusal is logged and retried at the next round."""
    try:
        return push(engine, settings)
    except AlertmanagerError as exc:
        log.error("could not post alerts to Alertmanager: %s", exc)
        return 0


# -- silences ---------------------------------------------------------------------------------


def _matcher(name: str, value: str) -> dict:
    return {"name": name, "value": value, "isRegex": False, "isEqual": True}


def create_silence(settings: Settings, *, subject: str | None, rule: str | None, starts_at: dt.datetime,
                   ends_at: dt.datetime, comment: str, created_by: str) -> str:  # fmt: skip
    """A silence in Alertmanager matching what `ledger alerts mute` matches: this deployment's
    alerts of a subject (a CorpNum, 'partner'), of a rule (its alertname), or both."""
    matchers = [_matcher("deployment", settings.deployment)]
    if subject is not None:
        matchers.append(_matcher("subject", subject))
    if rule is not None:
        matchers.append(_matcher("alertname", alert_name(rule)))
    body = {"matchers": matchers, "startsAt": starts_at.isoformat(), "endsAt": ends_at.isoformat(),
            "createdBy": created_by, "comment": comment}  # fmt: skip
    return _request(settings, "POST", "/api/v2/silences", json=body).json()["silenceID"]


def expire_silence(settings: Settings, silence_id: str) -> None:
    """End a silence now; one Alertmanager no longer knows (expired, garbage-collected) is fine."""
    try:
        _request(settings, "DELETE", f"/api/v2/silence/{silence_id}")
    except AlertmanagerError as exc:
        if "HTTP 404" not in str(exc) and "already expired" not in str(exc):
            raise


def list_silences(settings: Settings) -> list[dict]:
    """Alertmanager's silences in force or to come, every one (made here, in its UI or by amtool)."""
    found = _request(settings, "GET", "/api/v2/silences").json()
    rows = []
    for s in found:
        if s["status"]["state"] == "expired":
            continue
        matchers = ", ".join(f"{m['name']}{'=' if m.get('isEqual', True) else '!='}{'~' if m['isRegex'] else ''}"
                             f"\"{m['value']}\"" for m in s["matchers"])  # fmt: skip
        rows.append({"id": s["id"], "state": s["status"]["state"], "matchers": matchers, "starts_at": s["startsAt"],
                     "ends_at": s["endsAt"], "created_by": s["createdBy"], "comment": s["comment"]})  # fmt: skip
    return sorted(rows, key=lambda r: r["ends_at"])
