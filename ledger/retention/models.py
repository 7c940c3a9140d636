from __future__ import annotations

import datetime as dt

from sqlalchemy import String, func
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp


class RetentionMark(Base):
    """How far a retention rule has been applied in full: its rows taken before done_before are
    already pruned, so its next run reads from there (ledger.retention.rules, resumable). A
    rule without a row reads from its floor; deleting the row makes the next run read it all."""

    __tablename__ = "retention_marks"

    rule: Mapped[str] = mapped_column(String(40), primary_key=True)
    done_before: Mapped[dt.datetime] = mapped_column(Timestamp)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
