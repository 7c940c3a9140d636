from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp
from ledger.members.models import Member  # noqa: F401 - the table member_id refers to: it types that column


class MonthClose(Base):
    """One close of one member's Korean month, with the statement figures frozen at that moment.
    Reopening never deletes the row: it records who, when and why, so the rows are the audit
    trail; at most one close per member and month is in force (reopened_at IS NULL)."""

    __tablename__ = "month_closes"
    __table_args__ = (
        CheckConstraint("(reopened_at IS NULL) = (reopen_reason IS NULL)", name="reopen_has_reason"),
        CheckConstraint("extract(day FROM month) = 1", name="month_first_day"),
        Index(
            "uq_month_closes_member_id_month_in_force",
            "member_id",
            "month",
            unique=True,
            postgresql_where=text("reopened_at IS NULL"),
        ),  # fmt: skip
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    month: Mapped[dt.date]
    figures: Mapped[dict]  # the statement as closed: {"lines": [...]}; amounts as exact decimal strings
    closed_by: Mapped[str] = mapped_column(String(100))
    closed_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    reopened_by: Mapped[str | None] = mapped_column(String(100))
    reopened_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    reopen_reason: Mapped[str | None] = mapped_column(Text)
