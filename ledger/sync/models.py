from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.db.base import Base, Timestamp, one_of
from ledger.members.models import Member

KINDS = ("payments", "usage", "refunds")
REPAIR_OUTCOMES = ("repaired", "unrepaired")
RUN_STATUSES = ("running", "succeeded", "failed", "skipped", "abandoned", "interrupted")


class SyncState(Base):
    """Where a member's history of one kind stands. high_water: every day up to it has been
    synced; the next run starts a lookback before it."""

    __tablename__ = "sync_states"
    __table_args__ = (one_of("kind", KINDS, "kind_known"),)

    member_id: Mapped[int] = mapped_column(ForeignKey(Member.id, ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    high_water: Mapped[dt.date | None]
    window_start: Mapped[dt.date | None]
    window_end: Mapped[dt.date | None]
    pages_done: Mapped[int] = mapped_column(server_default="0")
    last_full_pass_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        one_of("kind", KINDS, "kind_known"),
        one_of("status", RUN_STATUSES, "status_known"),
        Index("ix_sync_runs_member_id_kind_started_at", "member_id", "kind", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # millions a year at 100,000 members
    member_id: Mapped[int] = mapped_column(ForeignKey(Member.id, ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12), server_default="running")
    started_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    finished_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    window_start: Mapped[dt.date | None]
    window_end: Mapped[dt.date | None]
    pages: Mapped[int] = mapped_column(server_default="0")
    api_calls: Mapped[int] = mapped_column(server_default="0")
    rows_inserted: Mapped[int] = mapped_column(server_default="0")
    rows_updated: Mapped[int] = mapped_column(server_default="0")
    rows_unchanged: Mapped[int] = mapped_column(server_default="0")
    error: Mapped[str | None] = mapped_column(Text)


class SyncLock(Base):
    """One row per (member, kind): the lease of the session whose sync runs it (ledger.sync.locks).
    Taking a lease writes the row, which needs write rights on the table that a read-only role
    never has: a reader cannot stop the syncs (an advisory lock, which any role may take, could).
    A lease whose session is gone from pg_stat_activity is free."""

    __tablename__ = "sync_locks"
    __table_args__ = (one_of("kind", KINDS, "kind_known"),)

    member_id: Mapped[int] = mapped_column(ForeignKey(Member.id, ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    holder_pid: Mapped[int | None]  # pg_backend_pid() of the holder's lock connection
    holder_started: Mapped[dt.datetime | None]  # its backend_start: a reused pid is not the holder


class SyncRepair(Base):
    """A window the next sync of (member, kind) fetches again, whatever the lookback: asked for
    by reconciliation where the ledger does not add up (a broken balance chain, a deposit with
    no credit, a closing balance off, a quarantined row), so a row that arrived late upstream,
    or a window once answered with garbage, is fetched with no --since (ledger.reconcile.repair).
    The sync records when it fetched the window and the rows that were new (ledger.sync.repair);
    the reconciliation after it says whether the finding is gone ('repaired') or not."""

    __tablename__ = "sync_repairs"
    __table_args__ = (
        one_of("kind", KINDS, "kind_known"),
        one_of("outcome", REPAIR_OUTCOMES, "outcome_known"),
        CheckConstraint("window_start <= window_end", name="window_ordered"),
        Index("ix_sync_repairs_member_id_kind_due", "member_id", "kind", postgresql_where=text("fetched_at IS NULL")),
        Index("ix_sync_repairs_member_id_check_name_fingerprint", "member_id", "check_name", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey(Member.id, ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    window_start: Mapped[dt.date | None]  # None for refunds: their history has no dates, a full pass is made
    window_end: Mapped[dt.date | None]
    check_name: Mapped[str] = mapped_column(String(30))  # the discrepancy it is for
    fingerprint: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    fetch_started_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)  # the sync run that fetched it
    fetched_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    fetch_attempts: Mapped[int] = mapped_column(server_default="0")  # syncs that took it (a failing one gives up)
    found: Mapped[dict | None]  # rows new to the ledger in the window, by Korean date: {"2026-11-15": 1}
    outcome: Mapped[str | None] = mapped_column(String(12))
    judged_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
