"""One notification per channel and rule for a whole check run, not one per member: it lists
the alerts that started firing, are still firing at a repeat, could not be checked, or resolved."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import Connection

from ledger.alerts.outbox import enqueue
from ledger.alerts.rules import Event
from ledger.settings import Settings

# The headline names the most urgent change in the group.
ORDER = ("firing", "repeat", "unknown", "resolved")
SECTION = {"firing": "started firing", "repeat": "still firing", "unknown": "could not be checked",
           "resolved": "resolved"}  # fmt: skip
LISTED = 20  # members named in the text per section; the payload carries them all


def notify(conn: Connection, settings: Settings, events: Iterable[Event], now: dt.datetime) -> int:
    """Enqueue the grouped notifications of one check run; returns how many groups were sent."""
    by_rule: dict[str, list[Event]] = {}
    for event in events:
        by_rule.setdefault(event.rule, []).append(event)
    for rule, group in sorted(by_rule.items()):
        text, payload = render(rule, group)
        alert_id = group[0].alert_id if len(group) == 1 else None
        enqueue(conn, settings, alert_id=alert_id, rule=rule, kind=payload["kind"], text=text, payload=payload, now=now)
    return len(by_rule)


def render(rule: str, group: list[Event]) -> tuple[str, dict]:
    sections = {kind: [e for e in group if e.kind == kind] for kind in ORDER}
    headline_kind = next(kind for kind in ORDER if sections[kind])
    counts = ", ".join(f"{len(sections[k])} {SECTION[k]}" for k in ORDER if sections[k])
    if len(group) == 1:
        only = group[0]
        text = f"[{headline_kind.upper()}] {rule} {only.subject}: {only.summary}"
    else:
        lines = [f"[{headline_kind.upper()}] {rule}: {counts}"]
        for kind in ORDER:
            listed = sections[kind]
            if not listed:
                continue
            lines.append(f"{SECTION[kind]}:")
            lines += [f"  {e.subject}: {e.summary}" for e in listed[:LISTED]]
            if len(listed) > LISTED:
                lines.append(f"  … and {len(listed) - LISTED} more")
        text = "\n".join(lines)
    payload = {
        "rule": rule,
        "kind": headline_kind,
        "counts": {k: len(sections[k]) for k in ORDER},
        "alerts": [
            {"subject": e.subject, "change": e.kind, "summary": e.summary, "value": e.value, "threshold": e.threshold}
            for e in group
        ],
    }
    if len(group) == 1:
        payload["subject"] = group[0].subject
    return text, payload
