from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp

BEAT = "beat"


class Heartbeat(Base):
    """The last sign of life of a process or scheduled job: 'beat' (written on every tick beat
    sends) or 'task:<celery task name>' (written when a scheduled task starts and ends). Read by
    `ledger healthcheck`, the watchdog and the metrics."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    finished_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    succeeded_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    status: Mapped[str | None] = mapped_column(String(12))  # running, succeeded, failed (tasks only)
    detail: Mapped[str | None] = mapped_column(Text)
