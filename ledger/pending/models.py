from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp

PENDING, DONE, CANCELLED, INVALID = "pending", "done", "cancelled", "invalid"


class TrackedItem(Base):
    """A settle code or refund code we poll until it reaches a final state."""

    __tablename__ = "tracked_items"
    __table_args__ = (
        UniqueConstraint("member_id", "kind", "code"),
        CheckConstraint("kind IN ('settle', 'refund')", name="kind_known"),
        CheckConstraint("state IN ('pending', 'done', 'cancelled', 'invalid')", name="state_known"),
        Index("ix_tracked_items_state_next_poll_at", "state", "next_poll_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(10), server_default=PENDING)
    raw_state: Mapped[int | None]
    requested_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    next_poll_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    poll_count: Mapped[int] = mapped_column(server_default="0")
    resolved_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    last_answer: Mapped[dict | None]
