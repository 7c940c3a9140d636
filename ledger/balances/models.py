from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp
from ledger.members.models import Member


class BalanceSnapshot(Base):
    """One balance reading. member_id is NULL for the partner's own balance."""

    __tablename__ = "balance_snapshots"
    __table_args__ = (
        CheckConstraint("subject IN ('member', 'partner')", name="subject_known"),
        CheckConstraint("(subject = 'member') = (member_id IS NOT NULL)", name="member_subject_has_member"),
        Index("ix_balance_snapshots_member_id_taken_at", "member_id", "taken_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # millions a year at 100,000 members
    subject: Mapped[str] = mapped_column(String(10))
    member_id: Mapped[int | None] = mapped_column(ForeignKey(Member.id, ondelete="CASCADE"))
    corp_num: Mapped[str] = mapped_column(String(10))
    balance: Mapped[Decimal]
    refundable_balance: Mapped[Decimal | None]
    taken_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
