from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp, one_of
from ledger.members.models import Member  # noqa: F401 - the table member_id refers to: it types that column

PARTNER = "partner"  # the subject of the partner's own balance
ALERT_STATES = ("ok", "pending", "firing", "unknown")
NOTIFICATION_STATUSES = ("pending", "sent", "failed")
CHANNELS = ("log", "webhook", "email")


class Alert(Base):
    """One alert per (subject, rule). subject is a CorpNum, 'partner', or for stuck items
    'settle:<code>' / 'refund:<code>'. state: ok, pending (condition seen, fewer than K
    checks), firing, or unknown (the last check failed: never taken as OK)."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("subject", "rule"),
        one_of("state", ALERT_STATES, "state_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(60))
    rule: Mapped[str] = mapped_column(String(30))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(10), server_default="ok")
    consecutive: Mapped[int] = mapped_column(server_default="0")
    value: Mapped[Decimal | None]
    threshold: Mapped[Decimal | None]
    summary: Mapped[str | None] = mapped_column(Text)
    fired_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    last_notified_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    checked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())


class AlertSilence(Base):
    """Notifications matching it are held back from starts_at to ends_at (the alert states still
    move). It matches a subject (a CorpNum or 'partner'), a rule, or both; who set it and why are
    kept, as in Alertmanager."""

    __tablename__ = "alert_silences"
    __table_args__ = (
        CheckConstraint("subject IS NOT NULL OR rule IS NOT NULL", name="matches_something"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_alert_silences_ends_at", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str | None] = mapped_column(String(60))
    rule: Mapped[str | None] = mapped_column(String(30))
    comment: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    starts_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    ends_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())


class Notification(Base):
    """The outbox: every notification is written here first, then sent (and retried)."""

    __tablename__ = "notifications"
    __table_args__ = (
        one_of("status", NOTIFICATION_STATUSES, "status_known"),
        one_of("channel", CHANNELS, "channel_known"),
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The notification's stable id: sent as `notification_id` and the Idempotency-Key header on
    # every attempt, so a receiver that got a retried delivery twice can drop the repeat.
    key: Mapped[uuid.UUID] = mapped_column(server_default=text("gen_random_uuid()"), unique=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    rule: Mapped[str | None] = mapped_column(String(30))  # grouped notifications: one per channel and rule
    channel: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20))  # firing, repeat, resolved, unknown, test, discrepancy
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict]
    status: Mapped[str] = mapped_column(String(10), server_default="pending")
    attempts: Mapped[int] = mapped_column(server_default="0")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    sent_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
