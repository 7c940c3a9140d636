"""How long retention keeps each kind of row, and the cutoffs that follow at one moment."""

from __future__ import annotations

import dataclasses
import datetime as dt

from ledger.kst import KST
from ledger.settings import Settings, SettingsError


@dataclasses.dataclass(frozen=True)
class Cutoffs:
    """Rows older than these go (each rule says what stays regardless). Day-based cutoffs fall
    on a Korean midnight, so a day is thinned or dropped whole."""

    runs_before: dt.datetime
    thin_before: dt.datetime
    snapshots_before: dt.datetime | None  # None: one reading a day is kept forever
    sent_before: dt.datetime
    heartbeats_before: dt.datetime
    claims_before: dt.datetime


@dataclasses.dataclass(frozen=True)
class Policy:
    runs_days: int = 90
    snapshots_full_days: int = 30
    snapshots_days: int = 400
    outbox_days: int = 30
    heartbeats_days: int = 30
    claims_days: int = 14
    batch_rows: int = 5000

    def __post_init__(self) -> None:
        if self.batch_rows < 1:
            raise SettingsError(f"LEDGER_RETENTION_BATCH_ROWS must be at least 1, got {self.batch_rows}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            runs_days=settings.retention_runs_days,
            snapshots_full_days=settings.retention_snapshots_full_days,
            snapshots_days=settings.retention_snapshots_days,
            outbox_days=settings.retention_outbox_days,
            heartbeats_days=settings.retention_heartbeats_days,
            claims_days=settings.retention_claims_days,
            batch_rows=settings.retention_batch_rows,
        )

    def cutoffs(self, now: dt.datetime) -> Cutoffs:
        today = now.astimezone(KST).date()

        def midnight(days: int) -> dt.datetime:
            return dt.datetime.combine(today - dt.timedelta(days=days), dt.time(), tzinfo=KST)

        return Cutoffs(
            runs_before=midnight(self.runs_days),
            thin_before=midnight(self.snapshots_full_days),
            snapshots_before=midnight(self.snapshots_days) if self.snapshots_days else None,
            sent_before=now - dt.timedelta(days=self.outbox_days),
            heartbeats_before=now - dt.timedelta(days=self.heartbeats_days),
            claims_before=now - dt.timedelta(days=self.claims_days),
        )
