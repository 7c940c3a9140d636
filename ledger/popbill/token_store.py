"""Linkhub session tokens kept on disk between processes until they expire.

A token serves one member for about an hour (Linkhub says when it expires). Kept only in a
process's memory, every `ledger sync`, balance check or poll started within that hour asked
for the member's token again: one call in four of a no-change re-sync. Here each token is a
row of a small SQLite file that every process on the machine shares (WAL: readers never wait
for a writer), looked up before a token is requested and written when one is issued.

It holds secrets (bearer tokens), so: the file is the owner's alone (0600, and its folder
writable by no one else, checked at open), a token is never logged or shown, and the row's key is a hash that
names the partner, the host and the member, so a token is never offered to another partner
or host. It is a cache: any failure to read or write it (a read-only disk, a locked or
corrupt file) falls back to asking Linkhub, with one warning per process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path

from ledger.popbill.auth import Token
from ledger.secret import Secret

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    key TEXT PRIMARY KEY,
    session_token TEXT NOT NULL,
    service_id TEXT NOT NULL,
    corp_num TEXT NOT NULL,
    expires_at REAL NOT NULL,
    issued_at REAL NOT NULL,
    scope TEXT NOT NULL
)
"""


class TokenStore:
    def __init__(self, path: Path, *, partner: str) -> None:
        """partner: what the tokens were issued to (link id, service id and auth host); part of
        every key."""
        self.path = Path(path)
        self._partner = partner
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._broken = False

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and not self._broken:
            try:
                self._conn = self._open()
            except (OSError, sqlite3.Error) as exc:
                self._give_up(exc)
        return self._conn

    def _open(self) -> sqlite3.Connection:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        for place, closed in ((folder, 0o022), (self.path, 0o077)):
            mode = stat.S_IMODE(place.stat().st_mode)
            if mode & closed:
                raise OSError(f"{place} is open to other users (mode {mode:o}); tokens are kept only where they are not")
        conn = sqlite3.connect(self.path, timeout=2.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")  # a cache: a token lost in a crash is asked for again
        conn.execute(_SCHEMA)
        conn.execute("DELETE FROM tokens WHERE expires_at < ?", (dt.datetime.now(dt.UTC).timestamp(),))
        return conn

    def _give_up(self, exc: BaseException) -> None:
        """Tokens stay in memory only for the rest of the process."""
        self._broken = True
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        log.warning("Popbill tokens are kept in memory only (cannot use %s: %s)", self.path, type(exc).__name__)

    def _key(self, corp_num: str) -> str:
        return hashlib.sha256(f"{self._partner}\x1f{corp_num}".encode()).hexdigest()

    def load(self, corp_num: str) -> Token | None:
        with self._lock:
            conn = self._connection()
            if conn is None:
                return None
            try:
                row = conn.execute(
                    "SELECT session_token, service_id, corp_num, expires_at, issued_at, scope FROM tokens WHERE key = ?",
                    (self._key(corp_num),),
                ).fetchone()
            except sqlite3.Error as exc:
                self._give_up(exc)
                return None
        if row is None or row[2] != corp_num:
            return None
        stamp = dt.datetime.fromtimestamp
        return Token(Secret(row[0]), row[1], row[2], stamp(row[3], dt.UTC), stamp(row[4], dt.UTC),
                     tuple(filter(None, row[5].split(" "))))  # fmt: skip

    def save(self, token: Token) -> None:
        with self._lock:
            conn = self._connection()
            if conn is None:
                return
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (self._key(token.corp_num), token.session_token.reveal(), token.service_id, token.corp_num,
                     token.expires_at.timestamp(), token.issued_at.timestamp(), " ".join(token.scope)),
                )  # fmt: skip
            except sqlite3.Error as exc:
                self._give_up(exc)

    def forget(self, corp_num: str, token: Token) -> None:
        """Drop this token (Linkhub refused it), unless another process has replaced it."""
        with self._lock:
            conn = self._connection()
            if conn is None:
                return
            try:
                conn.execute(
                    "DELETE FROM tokens WHERE key = ? AND session_token = ?",
                    (self._key(corp_num), token.session_token.reveal()),
                )
            except sqlite3.Error as exc:
                self._give_up(exc)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"TokenStore({str(self.path)!r})"
