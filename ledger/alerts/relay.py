"""A receiver for Alertmanager's webhook, so the ops compose profile pages somewhere out of the
box (`ledger alerts relay`, the `ops` receiver of deploy/alertmanager/alertmanager.yml): each
notification becomes one log line per alert (JSON with LEDGER_LOG_FORMAT=json) and, when
LEDGER_ALERT_WEBHOOK_URL is set, one Slack-compatible message there. A forward that fails answers
502, and Alertmanager sends the notification again."""

from __future__ import annotations

import json
import logging
from wsgiref.simple_server import WSGIRequestHandler, make_server

import requests

from ledger import logs
from ledger.settings import Settings

log = logging.getLogger("ledger.alerts.relay")
LISTED = 20  # alerts named in a forwarded message; the log has every one
MAX_BODY = 64 * 2**20


def render(notification: dict) -> str:
    """One message for one Alertmanager notification (a group): headline, then the alerts."""
    alerts = notification.get("alerts", [])
    firing = [a for a in alerts if a.get("status") == "firing"]
    resolved = [a for a in alerts if a.get("status") == "resolved"]
    group = notification.get("groupLabels", {})
    name = group.get("alertname") or notification.get("commonLabels", {}).get("alertname", "alerts")
    where = f" ({group['deployment']})" if group.get("deployment") else ""
    counts = ", ".join(f"{len(x)} {word}" for x, word in ((firing, "firing"), (resolved, "resolved")) if x)
    lines = [f"[{notification.get('status', 'firing').upper()}] {name}{where}: {counts}"]
    for a in (firing + resolved)[:LISTED]:
        labels, notes = a.get("labels", {}), a.get("annotations", {})
        subject = labels.get("subject") or labels.get("instance") or labels.get("kind") or ""
        text = notes.get("description") or notes.get("summary") or ""
        lines.append(f"  {a.get('status')}: {subject}: {text}".rstrip(": "))
    if len(alerts) > LISTED:
        lines.append(f"  … and {len(alerts) - LISTED} more")
    return "\n".join(lines)


def make_app(settings: Settings):
    def app(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST" or environ.get("PATH_INFO") != "/alertmanager":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"POST Alertmanager's webhook to /alertmanager\n"]
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            if size > MAX_BODY:
                raise ValueError("too large")
            notification = json.loads(environ["wsgi.input"].read(size))
            alerts = notification["alerts"]
        except (ValueError, KeyError, TypeError):
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"an Alertmanager webhook notification (JSON) was expected\n"]
        for alert in alerts:
            labels = alert.get("labels", {})
            with logs.fields(alertname=labels.get("alertname"), subject=labels.get("subject"),
                             deployment=labels.get("deployment"), status=alert.get("status")):  # fmt: skip
                (log.warning if alert.get("status") == "firing" else log.info)(
                    "%s %s: %s", alert.get("status"), labels.get("alertname"),
                    alert.get("annotations", {}).get("description") or alert.get("annotations", {}).get("summary", ""),
                )  # fmt: skip
        if settings.alert_webhook_url:
            try:
                answer = requests.post(settings.alert_webhook_url.reveal(), json={"text": render(notification)},
                                       timeout=settings.alert_webhook_timeout)  # fmt: skip
                answer.raise_for_status()
            except requests.RequestException as exc:
                log.error("could not forward an Alertmanager notification: %s", type(exc).__name__)
                start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
                return [b"the webhook refused; Alertmanager will send it again\n"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - one line per alert is logged already
        pass


def make_relay_server(host: str, port: int, settings: Settings):
    return make_server(host, port, make_app(settings), handler_class=_QuietHandler)
