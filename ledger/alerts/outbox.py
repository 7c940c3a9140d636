"""The notification outbox: written in the same transaction as the alert's change, then sent
by deliver(). A channel that is down leaves its rows 'failed' with the error and a next
attempt time, backing off; nothing is silently lost."""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
import uuid
from email.message import EmailMessage

import requests
from sqlalchemy import Connection, Engine, insert, text

from ledger import jsonutil
from ledger.alerts.models import Notification
from ledger.db.work_queue import each_due
from ledger.settings import Settings

log = logging.getLogger("ledger.alerts")


# What Alertmanager (fed by the ledger and by Prometheus's rules) delivers when it is configured:
# the ledger's own webhook and mail then carry none of it, so nothing is paged twice.
ALERTMANAGER_DELIVERS = {"firing", "repeat", "resolved", "unknown", "discrepancy"}


def channels(settings: Settings, kind: str | None = None) -> list[str]:
    """The channels a notification of this kind goes to. The log always has it (the outbox is
    the record); with Alertmanager configured, alerts and discrepancies reach people through it."""
    configured = ["log"]
    if settings.alertmanager_url and kind in ALERTMANAGER_DELIVERS:
        return configured
    if settings.alert_webhook_url:
        configured.append("webhook")
    if settings.smtp_host and settings.mail_to:
        configured.append("email")
    return configured


def enqueue(
    conn: Connection,
    settings: Settings,
    *,
    alert_id: int | None,
    rule: str | None = None,
    kind: str,
    text: str,
    payload: dict,
    now: dt.datetime | None = None,
) -> None:
    """One outbox row per configured channel, due at once."""
    now = now or dt.datetime.now(dt.UTC)
    payload = {**payload, "text": text, "kind": kind}
    conn.execute(
        insert(Notification),
        [
            {"key": uuid.uuid4(), "alert_id": alert_id, "rule": rule, "channel": c, "kind": kind, "text": text, "payload": payload,
             "created_at": now, "next_attempt_at": now}
            for c in channels(settings, kind)
        ],
    )  # fmt: skip


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def _send(channel: str, row, settings: Settings) -> None:
    if channel == "log":
        log.warning("ALERT %s", row.text)
    elif channel == "webhook":
        # Slack-compatible: a "text" field, plus the structured alert for other receivers. The
        # notification's id is the same on every attempt, so a receiver can drop a repeat.
        key = str(row.key)
        try:
            answer = requests.post(
                settings.alert_webhook_url.reveal(), json={**row.payload, "notification_id": key},
                headers={"Idempotency-Key": key}, timeout=settings.alert_webhook_timeout,
            )  # fmt: skip
        except requests.RequestException as exc:
            # The URL is a credential (Slack's are): report the failure without it.
            raise RuntimeError(f"webhook unreachable: {type(exc).__name__}") from None
        if not 200 <= answer.status_code < 300:
            raise RuntimeError(f"webhook answered HTTP {answer.status_code}")
    elif channel == "email":
        message = EmailMessage()
        message["Subject"] = row.text.splitlines()[0][:150]
        message["Message-ID"] = f"<{row.key}@ledger>"  # the same on every attempt
        message["From"] = settings.mail_from
        message["To"] = ", ".join(settings.mail_to)
        message.set_content(row.text + "\n\n" + jsonutil.dumps(row.payload))
        send_mail(settings, message)
    else:
        raise RuntimeError(f"unknown channel {channel!r}")


def mail_security_problem(settings: Settings) -> str | None:
    """Why these settings would send the SMTP password unencrypted, or None."""
    logs_in = bool(settings.smtp_user and settings.smtp_password)
    if logs_in and not (settings.smtp_ssl or settings.smtp_starttls) and not settings.smtp_insecure_plaintext_login:
        return (
            "LEDGER_SMTP_USER is set but neither LEDGER_SMTP_STARTTLS nor LEDGER_SMTP_SSL: the password would cross "
            "the network unencrypted. Turn one on (STARTTLS is the default with a user), or, on a link you trust, "
            "say so with LEDGER_SMTP_INSECURE_PLAINTEXT_LOGIN=true"
        )
    return None


def send_mail(settings: Settings, message: EmailMessage) -> None:
    """One message through the configured server. Credentials only ever go over TLS (SMTPS, or
    STARTTLS, which the server must offer: one that does not gets no AUTH at all), unless
    LEDGER_SMTP_INSECURE_PLAINTEXT_LOGIN says otherwise."""
    if problem := mail_security_problem(settings):
        raise RuntimeError(problem)
    context = ssl.create_default_context()
    if settings.smtp_ssl:
        connection = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=10, context=context)
    else:
        connection = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10)
    with connection as smtp:
        if settings.smtp_starttls and not settings.smtp_ssl:
            try:
                smtp.starttls(context=context)
            except smtplib.SMTPNotSupportedError:
                raise RuntimeError(
                    f"{settings.smtp_host} does not offer STARTTLS (LEDGER_SMTP_STARTTLS): nothing was sent, "
                    "no password either"
                ) from None
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user, settings.smtp_password.reveal())
        smtp.send_message(message)


_TAKE_DUE = text(
    """
    SELECT id, key, channel, text, payload, attempts FROM notifications
    WHERE status IN ('pending', 'failed') AND next_attempt_at <= :now
    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
    """
)


def deliver(engine: Engine, settings: Settings, *, now: dt.datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Send what is due, one row per transaction; returns counts of sent and failed."""
    now = now or dt.datetime.now(dt.UTC)
    counts = {"sent": 0, "failed": 0}
    for conn, row in each_due(engine, _TAKE_DUE, {"now": now}, limit=limit):
        attempts = row.attempts + 1
        try:
            _send(row.channel, row, settings)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            conn.execute(
                text("UPDATE notifications SET status = 'failed', attempts = :a, last_error = :e, "
                     "next_attempt_at = :next WHERE id = :id"),
                {"a": attempts, "e": error, "next": now + backoff(attempts), "id": row.id},
            )  # fmt: skip
            counts["failed"] += 1
        else:
            conn.execute(
                text("UPDATE notifications SET status = 'sent', attempts = :a, sent_at = :now, last_error = NULL "
                     "WHERE id = :id"),
                {"a": attempts, "now": now, "id": row.id},
            )  # fmt: skip
            counts["sent"] += 1
    return counts
