from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp
from ledger.members.models import Member  # noqa: F401 - the table member_id refers to: it types that column

CHECKS = (
    "balance_chain", "closing_balance", "deposit_without_credit", "credit_without_deposit",
    "refund_without_debit", "debit_without_refund", "pending_aging", "sync_stale", "quarantined_row",
    "tx_sign", "closed_period_changed",
)  # fmt: skip


class Discrepancy(Base):
    """Something in the ledger that does not add up. `fingerprint` names the thing itself
    (a row, a payment, a snapshot), so re-running a check finds the same discrepancy again
    instead of writing a new one; one that is no longer found is marked resolved."""

    __tablename__ = "discrepancies"
    __table_args__ = (
        UniqueConstraint("member_id", "check_name", "period", "fingerprint"),
        CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name="status_known"),
        Index("ix_discrepancies_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    check_name: Mapped[str] = mapped_column(String(30))
    period: Mapped[str] = mapped_column(String(10))  # 'all', 'YYYY-MM' or 'YYYY-MM-DD'
    fingerprint: Mapped[str] = mapped_column(String(200))
    expected: Mapped[Decimal | None]
    actual: Mapped[Decimal | None]
    difference: Mapped[Decimal | None]
    description: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict]
    status: Mapped[str] = mapped_column(String(12), server_default="open")
    first_seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    last_seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    resolved_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
