from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp, created_at_column


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (CheckConstraint("corp_num ~ '^[0-9]{10}$'", name="corp_num_ten_digits"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    corp_num: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(String(50))
    active: Mapped[bool] = mapped_column(server_default="true")
    low_balance_threshold: Mapped[Decimal | None]
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now(), onupdate=func.now())

    def __repr__(self) -> str:
        return f"Member({self.corp_num!r}, active={self.active})"
