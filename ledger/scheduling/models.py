from __future__ import annotations

import datetime as dt

from sqlalchemy import String, func
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp


class ScheduleClaim(Base):
    """A scheduled job's run for one slot (its scheduled time, rounded). The first beat to
    insert the row runs the job; a second beat's trigger for the same slot finds it and stops."""

    __tablename__ = "schedule_claims"

    job: Mapped[str] = mapped_column(String(40), primary_key=True)
    slot: Mapped[dt.datetime] = mapped_column(Timestamp, primary_key=True)
    claimed_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
