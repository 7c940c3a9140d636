"""The lock that keeps two syncs of one (member, kind) apart, and that no reader can hold.

A row of sync_locks locked FOR NO KEY UPDATE, in a transaction of its own held open for the
whole sync (the sync itself commits page by page on another connection). Locking a row needs
UPDATE rights on its table, which the read-only role never has; an advisory lock, which any
role may take, would let a reader skip every sync. When the row is taken, the holder is named:
another sync (application_name 'ledger sync'), or something else, which the caller reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

APPLICATION_NAME = "ledger sync"
_LOCK_NOT_AVAILABLE = "55P03"


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a sync lock we wanted."""

    pid: int | None
    role: str | None
    application: str | None

    @property
    def is_sync(self) -> bool:
        return self.application == APPLICATION_NAME

    def describe(self) -> str:
        if self.is_sync:
            return "already running"
        if self.pid is None:
            return "locked by another session (it could not be identified), not by a sync"
        app = f", application {self.application!r}" if self.application else ""
        return f"locked by role {self.role} (pid {self.pid}{app}), not by a sync"


_HOLDER = text(
    """
    SELECT a.pid, a.usename AS role, a.application_name AS application
    FROM sync_locks s
    JOIN pg_locks l ON l.locktype = 'transactionid' AND l.transactionid = s.xmax AND l.granted
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE s.member_id = :m AND s.kind = :k AND l.pid <> pg_backend_pid()
    LIMIT 1
    """
)


@contextmanager
def sync_lock(engine: Engine, member_id: int, kind: str) -> Iterator[Holder | None]:
    """Yield None while this process holds the lock, or the Holder that has it (at once: the
    lock is never waited for)."""
    key = {"m": member_id, "k": kind}
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO sync_locks (member_id, kind) VALUES (:m, :k) ON CONFLICT DO NOTHING"), key)
        conn.commit()
        # SET LOCAL: the name goes with the transaction, not with the pooled connection.
        conn.execute(text("SELECT set_config('application_name', :name, true)"), {"name": APPLICATION_NAME})
        try:
            conn.execute(
                text("SELECT 1 FROM sync_locks WHERE member_id = :m AND kind = :k FOR NO KEY UPDATE NOWAIT"), key
            )
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            conn.rollback()
            row = conn.execute(_HOLDER, key).one_or_none()
            conn.rollback()
            yield Holder(*row) if row else Holder(None, None, None)
            return
        try:
            yield None
        finally:
            try:
                conn.rollback()
            except Exception:  # a broken connection released the lock with it
                pass
