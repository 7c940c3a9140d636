from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp, one_of
from ledger.members.models import Member  # noqa: F401 - the table member_id refers to: it types that column

PENDING, DONE, CANCELLED, INVALID = "pending", "done", "cancelled", "invalid"
# A request of ours whose answer we have not seen yet (the intent, committed before the POST),
# one whose outcome is unknown (timeout, dropped connection, database error after sending),
# one the member's history proved never registered, and one Popbill answered with a refusal.
SENDING, UNKNOWN, NOT_FOUND, REFUSED = "sending", "unknown", "not_found", "refused"
STATES = (PENDING, DONE, CANCELLED, INVALID, SENDING, UNKNOWN, NOT_FOUND, REFUSED)
KINDS = ("settle", "refund")


class TrackedItem(Base):
    """A settle code or refund code we poll until it reaches a final state; or a request of our
    own (amount and counterparty set) whose code we may never learn, matched in the history."""

    __tablename__ = "tracked_items"
    __table_args__ = (
        UniqueConstraint("member_id", "kind", "code"),
        one_of("kind", KINDS, "kind_known"),
        one_of("state", STATES, "state_known"),
        Index("ix_tracked_items_state_next_poll_at", "state", "next_poll_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    code: Mapped[str | None] = mapped_column(String(40))  # None until (unless) Popbill's answer is seen
    state: Mapped[str] = mapped_column(String(10), server_default=PENDING)
    raw_state: Mapped[int | None]
    requested_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    next_poll_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    poll_count: Mapped[int] = mapped_column(server_default="0")
    resolved_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    last_answer: Mapped[dict | None]
    # Our own requests: what identifies the history entry when no code came back.
    amount: Mapped[Decimal | None]
    counterparty: Mapped[str | None] = mapped_column(String(100))  # settlerName / accountName
    form_digest: Mapped[str | None] = mapped_column(String(64))  # BLAKE2b of the whole form
    answered_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)  # the POST came back (or failed)
    registered_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)  # regDT/reqDT of the matched entry
    error: Mapped[str | None] = mapped_column(Text)
