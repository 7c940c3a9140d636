"""The leases that keep two syncs of one (member, kind) apart, and that no reader can take.

A lease is a row of sync_locks naming the session that holds it (holder_pid, holder_started:
that session's pg_backend_pid() and backend_start). Every sync of a process takes its leases
through one connection kept open for the purpose (outside the pool, for the life of the
engine), so a sync needs no database connection of its own while it waits on Popbill: it
borrows one from the pool only to write a page.

- Taking a lease is an UPDATE (an INSERT for a first sync) of that row, allowed only while
  the row names no live session. Both need write rights on sync_locks, which the read-only
  role never has (an advisory lock, which any role may take, would let a reader stop every
  sync). Under READ COMMITTED, a racing UPDATE re-checks the condition on the row the other
  one committed, so two processes never both win.
- A process that dies (or loses its lock connection) frees its leases with it: the session
  they name is gone from pg_stat_activity, so the next sync may take them, and records the
  dead one's `running` row as abandoned.
- A lock connection that was cut is reopened and takes over the leases the old one named.
- The statements run with a short lock_timeout: a session holding the row itself (FOR UPDATE
  in psql, say) is reported by name rather than waited on, and so is a live session other
  than a sync named by the lease.
- A session holds a lease at most once, so this process also keeps the set of leases it
  holds and turns a second sync of the same key in the same process away here.
- The sync's own start and close statements (ledger/sync/sql.py) take and release the leases
  in their transactions, naming this lock connection's session (`identity`), with no round trip
  on the lock connection. What a start cannot take (a live holder, this process's other syncs
  included, or a row another transaction locked) comes here to be waited out briefly or named.
- A lease naming this process's own live session is held (by another of its syncs), here as
  in the start statement; so a release that failed is remembered and tried again before the
  next start, rather than left to block the member until the process ends.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

APPLICATION_NAME = "ledger sync"  # the lock connection's, so a lease's holder is known as a sync
LOCK_TIMEOUT_MS = 1000  # a racing lease update commits at once; a longer wait is a foreign lock
_LOCK_NOT_AVAILABLE = "55P03"

Key = tuple[int, str]  # (member_id, kind)


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a sync lease we wanted."""

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


# Whether a lease's holder is alive: its session is still there. Other roles' sessions show
# no backend_start to a role without pg_read_all_stats; then the pid alone has to do.
_HOLDER_ALIVE = """EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = s.holder_pid
                           AND (a.backend_start IS NULL OR a.backend_start = s.holder_started))"""

# Driver-level SQL (psycopg's %(name)s), run on the lock connection's psycopg connection:
# two of these per synced member, where SQLAlchemy's execution layer cost as much CPU as
# the driver's.
_TAKE = f"""
    INSERT INTO sync_locks AS s (member_id, kind, holder_pid, holder_started)
    SELECT %(m)s, k, %(pid)s, %(started)s FROM unnest(CAST(%(kinds)s AS text[])) AS k
    ON CONFLICT (member_id, kind) DO UPDATE SET holder_pid = %(pid)s, holder_started = %(started)s
    WHERE s.holder_pid IS NULL OR NOT {_HOLDER_ALIVE}
    RETURNING s.kind
    """

_RELEASE = (
    "UPDATE sync_locks SET holder_pid = NULL, holder_started = NULL WHERE member_id = %(m)s "
    "AND kind = ANY(CAST(%(kinds)s AS text[])) AND holder_pid = %(pid)s AND holder_started = %(started)s"
)

_ME = "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"

# After a new lock connection: the leases the cut one held are ours again, unless taken since.
_TAKE_OVER = (
    "UPDATE sync_locks SET holder_pid = %(pid)s, holder_started = %(started)s "
    "WHERE holder_pid = %(old_pid)s AND holder_started = %(old_started)s"
)

# A live session named by the lease, or one holding the row itself (its xmax, a row lock).
_LEASE_HOLDER = """
    SELECT a.pid, a.usename AS role, a.application_name AS application
    FROM sync_locks s JOIN pg_stat_activity a ON a.pid = s.holder_pid
    WHERE s.member_id = %(m)s AND s.kind = %(k)s AND (a.backend_start IS NULL OR a.backend_start = s.holder_started)
    """
_ROW_HOLDER = """
    SELECT a.pid, a.usename AS role, a.application_name AS application
    FROM sync_locks s
    JOIN pg_locks l ON l.locktype = 'transactionid' AND l.transactionid = s.xmax AND l.granted
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE s.member_id = %(m)s AND s.kind = %(k)s AND l.pid <> pg_backend_pid()
    LIMIT 1
    """


def _lock_not_available(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", exc), "sqlstate", None) == _LOCK_NOT_AVAILABLE


class SyncLocks:
    def __init__(self, engine: Engine) -> None:
        # Its own connection, outside the pool: syncs holding pooled connections while they
        # wait for this one must never starve it. Its commits need not wait for the WAL
        # flush: a server crash ends every session, and a lease naming a dead session is free
        # whether or not its last change survived.
        options = f"-c lock_timeout={LOCK_TIMEOUT_MS} -c synchronous_commit=off"
        self._engine = create_engine(
            engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
            connect_args={"application_name": APPLICATION_NAME, "options": options},
        )  # fmt: skip
        self._conn: Connection | None = None
        self._driver = None  # the psycopg connection under _conn
        self._me: dict | None = None  # {"pid": ..., "started": ...} of the lock connection
        self._held: set[Key] = set()
        self._unreleased: set[Key] = set()  # leases whose release failed; still naming this session
        self._mutex = threading.Lock()

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            self._driver = conn.connection.driver_connection
            pid, started = self._execute(_ME)[0]
            previous, self._me = self._me, {"pid": pid, "started": started}
            if previous is not None:  # the start statements' leases too, which _held does not list
                self._execute(_TAKE_OVER, {**self._me, "old_pid": previous["pid"], "old_started": previous["started"]})
            self._conn = conn
        return self._conn

    def _execute(self, statement: str, params: dict | None = None) -> list:
        """On the psycopg connection itself; its errors raised as SQLAlchemy's, as before."""
        try:
            with self._driver.cursor(row_factory=namedtuple_row) as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as exc:
            raise DBAPIError.instance(statement, params, exc, psycopg.Error, hide_parameters=True) from exc

    def _run(self, statement: str, params: dict, *, attempts: int = 1) -> list:
        for attempt in range(1, attempts + 1):
            try:
                self._connection()
                return self._execute(statement, {**params, **self._me})
            except DBAPIError as exc:
                if _lock_not_available(exc):
                    raise
                self._close()  # its leases are free to take over, by us or by others
                if attempt == attempts:
                    raise
                log.warning("the sync-lock connection failed; opening a new one")
        raise AssertionError("unreachable")

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                log.warning("could not close the sync-lock connection")
            self._conn = None

    def acquire(self, member_id: int, kinds: list[str]) -> dict[str, Holder | None]:
        """Try each kind's lease without waiting: None where this sync now holds it, else who does."""
        with self._mutex:
            outcome: dict[str, Holder | None] = {}
            free = []
            for kind in kinds:
                if (member_id, kind) in self._held:
                    outcome[kind] = Holder(self._me["pid"] if self._me else None, None, APPLICATION_NAME)
                else:
                    free.append(kind)
            if free:
                # A second try on a new connection: the last one may have been cut since it was
                # used (a server restart); a pooled connection would have been pinged first.
                taken = self._take(member_id, free, attempts=2)
                if taken is None:  # a row held by another session: find which, kind by kind
                    taken = set().union(*(self._take(member_id, [kind]) or set() for kind in free))
                for kind in free:
                    outcome[kind] = None if kind in taken else self._holder(member_id, kind)
                    if outcome[kind] is None:
                        taken.add(kind)
                self._held.update((member_id, kind) for kind in taken)
            return {kind: outcome[kind] for kind in kinds}

    def identity(self) -> dict:
        """{"pid": ..., "started": ...}: the lock connection's session, which the leases name."""
        with self._mutex:
            if self._conn is None:
                self._run(_ME, {}, attempts=2)  # opens it (and takes over what a cut one held)
            if self._unreleased:
                self._release_unreleased()
            return dict(self._me)

    def _release_unreleased(self) -> None:
        by_member: dict[int, list[str]] = {}
        for member_id, kind in self._unreleased:
            by_member.setdefault(member_id, []).append(kind)
        try:
            for member_id, kinds in by_member.items():
                self._run(_RELEASE, {"m": member_id, "kinds": kinds})
                self._unreleased.difference_update((member_id, kind) for kind in kinds)
        except Exception:
            log.warning("could not release %d sync leases yet", len(self._unreleased))

    def reopen(self) -> None:
        """A new lock connection: the last one's session is gone (leases naming it are free)."""
        with self._mutex:
            self._close()
            self._run(_ME, {}, attempts=2)

    def _take(self, member_id: int, kinds: list[str], *, attempts: int = 1) -> set[str] | None:
        """The kinds whose lease this connection now holds; None when a row of them stayed
        locked by another session for longer than the lock timeout."""
        try:
            return {r.kind for r in self._run(_TAKE, {"m": member_id, "kinds": kinds}, attempts=attempts)}
        except OperationalError as exc:
            if not _lock_not_available(exc):
                raise
            return None

    def _holder(self, member_id: int, kind: str) -> Holder | None:
        """Who holds the lease or its row; None if nobody does by now and this connection took it.
        A row lock is waited out first (the lock timeout): the start or close statement of
        another sync holds one for a moment, and is not the lease's holder."""
        key = {"m": member_id, "k": kind}
        for _ in range(3):
            taken = self._take(member_id, [kind])
            if taken:  # the holder finished in between
                return None
            row = self._run(_ROW_HOLDER if taken is None else _LEASE_HOLDER, key)
            if row:
                return Holder(*row[0])
        return Holder(None, None, None)

    def release(self, member_id: int, kinds: list[str]) -> None:
        with self._mutex:
            mine = [kind for kind in kinds if (member_id, kind) in self._held]
            self._held.difference_update((member_id, kind) for kind in mine)
            self._release_rows(member_id, mine)

    def release_rows(self, member_id: int, kinds: list[str]) -> None:
        """Clear the lease rows naming this session that a start statement took (when its sync
        could not close: the close releases them otherwise)."""
        with self._mutex:
            self._held.difference_update((member_id, kind) for kind in kinds)
            self._release_rows(member_id, kinds)

    def _release_rows(self, member_id: int, kinds: list[str]) -> None:
        if not kinds:
            return
        try:
            self._run(_RELEASE, {"m": member_id, "kinds": kinds})
        except Exception:
            # The lease still names this live session, which turns later syncs of it away:
            # released before the next start (identity), or freed when the session ends.
            self._unreleased.update((member_id, kind) for kind in kinds)
            log.warning("could not release %d sync leases of member %s", len(kinds), member_id)


_registry: weakref.WeakKeyDictionary[Engine, SyncLocks] = weakref.WeakKeyDictionary()
_registry_guard = threading.Lock()


def locks_for(engine: Engine) -> SyncLocks:
    with _registry_guard:
        locks = _registry.get(engine)
        if locks is None:
            locks = _registry[engine] = SyncLocks(engine)
        return locks


@contextmanager
def sync_lock(engine: Engine, member_id: int, kind: str) -> Iterator[Holder | None]:
    """Yield None while this process holds the lease, or the Holder that has it (at once: a
    lease is never waited for)."""
    locks = locks_for(engine)
    holder = locks.acquire(member_id, [kind])[kind]
    try:
        yield holder
    finally:
        if holder is None:
            locks.release(member_id, [kind])
