"""The advisory locks that keep two syncs of one (member, kind) from running at once.

Every sync of a process takes its lock on one connection kept open for the purpose (outside
the pool, for the life of the engine), so a sync
needs no database connection of its own while it waits on Popbill: it borrows one from the
pool only to write a page. The locks are session locks, so a process that dies (or loses
that connection) frees every lock it held, and the next run records the dead one's
`running` row as abandoned. PostgreSQL grants a session a lock it already holds, so this
process also keeps the set of keys it holds, and a second sync of the same key in the same
process is turned away here.
"""

from __future__ import annotations

import logging
import threading
import weakref

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from ledger.sync.models import KINDS

log = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x4C44  # advisory-lock class for syncs ('LD')
_KIND_SLOT = {kind: n for n, kind in enumerate(KINDS)}


def lock_key(member_id: int, kind: str) -> int:
    return member_id * len(KINDS) + _KIND_SLOT[kind]


class SyncLocks:
    def __init__(self, engine: Engine) -> None:
        # Its own connection, outside the pool: syncs holding pooled connections while they
        # wait for this one must never starve it.
        self._engine = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self._conn: Connection | None = None
        self._held: set[int] = set()
        self._mutex = threading.Lock()

    def _run(self, function: str, keys: list[int], *, attempts: int = 1) -> list[bool]:
        calls = ", ".join(f"{function}({LOCK_NAMESPACE}, {int(key)})" for key in keys)
        for attempt in range(1, attempts + 1):
            try:
                if self._conn is None:
                    self._conn = self._engine.connect()
                return list(self._conn.execute(text(f"SELECT {calls}")).one())
            except DBAPIError:
                self._close()  # a closed session frees every lock it held
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

    def acquire(self, keys: list[int]) -> list[bool]:
        """Try each key without waiting; True where this sync now holds it."""
        with self._mutex:
            free = [key for key in keys if key not in self._held]
            # A second try on a new connection: the last one may have been cut since it was used
            # (a server restart); a pooled connection would have been pinged first.
            granted = dict(zip(free, self._run("pg_try_advisory_lock", free, attempts=2), strict=True)) if free else {}
            self._held.update(key for key, ok in granted.items() if ok)
            return [granted.get(key, False) for key in keys]

    def release(self, keys: list[int]) -> None:
        with self._mutex:
            mine = [key for key in keys if key in self._held]
            self._held.difference_update(mine)
            try:
                if mine and self._conn is not None:
                    self._run("pg_advisory_unlock", mine)
            except Exception:
                log.warning("could not release %d sync locks; their connection is closed instead", len(mine))


_registry: weakref.WeakKeyDictionary[Engine, SyncLocks] = weakref.WeakKeyDictionary()
_registry_guard = threading.Lock()


def locks_for(engine: Engine) -> SyncLocks:
    with _registry_guard:
        locks = _registry.get(engine)
        if locks is None:
            locks = _registry[engine] = SyncLocks(engine)
        return locks
