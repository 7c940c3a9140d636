"""Linkhub auth v2.0: request signing and a thread-safe token cache per (CorpNum, service)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Callable

from ledger.popbill.models import ShapeError
from ledger.secret import Secret

API_VERSION = "2.0"
# x-lh-date as Linkhub writes it: UTC, second precision, literal Z.
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_TOKEN_CHARS = 4096


def utc_stamp(moment: dt.datetime | None = None) -> str:
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime(DATE_FORMAT)


def body_digest(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def signing_message(body: bytes, date: str, forwarded: str | None, path: str) -> str:
    lines = ["POST", body_digest(body), date]
    if forwarded is not None:
        lines.append(forwarded)
    lines += [API_VERSION, path]
    return "\n".join(lines)


def sign(secret_key: Secret, message: str) -> str:
    key = base64.b64decode(secret_key.reveal())
    return base64.b64encode(hmac.new(key, message.encode(), hashlib.sha256).digest()).decode()


def token_request_body(corp_num: str, scopes: list[str]) -> bytes:
    return json.dumps({"access_id": corp_num, "scope": scopes}).encode()


def parse_expiration(value: str) -> dt.datetime:
    """'2026-11-25T20:51:30.000Z' (Linkhub) to an aware UTC datetime; a time without a zone
    is not one (whose clock would it be?)."""
    text = value.strip().replace("Z", "+00:00")
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"no zone in {value!r}")
    return moment.astimezone(dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)  # slots: a process keeps one per member it called
class Token:
    session_token: Secret
    service_id: str
    corp_num: str
    expires_at: dt.datetime
    issued_at: dt.datetime
    scope: tuple[str, ...] = ()

    @classmethod
    def from_answer(cls, answer: dict, corp_num: str, *, issued_at: dt.datetime, default_service: str) -> Token:
        """The token answer, checked: a non-empty session_token and an expiration with its zone."""
        session_token = answer.get("session_token")
        if type(session_token) is not str or not session_token.strip() or len(session_token) > MAX_TOKEN_CHARS:
            raise ShapeError("session_token", "missing" if session_token is None else "not a non-empty token text")
        expiration = answer.get("expiration")
        try:
            expires_at = parse_expiration(expiration) if type(expiration) is str else None
        except ValueError:
            expires_at = None
        if expires_at is None:
            shown = repr(expiration)[:60]
            raise ShapeError("expiration", "missing" if expiration is None else f"{shown} is not a UTC date-time")
        service_id = answer.get("serviceID")
        if service_id is not None and type(service_id) is not str:
            raise ShapeError("serviceID", f"not text but {type(service_id).__name__}")
        scope = answer.get("scope")
        if scope is not None and (type(scope) is not list or not all(type(s) is str for s in scope)):
            raise ShapeError("scope", "not a list of texts")
        return cls(Secret(session_token), service_id or default_service, corp_num, expires_at, issued_at,
                   tuple(scope or ()))  # fmt: skip

    def needs_renewal(self, now: dt.datetime) -> bool:
        # Renew a little before expiry: a minute, or a tenth of a short test lifetime.
        margin = min(dt.timedelta(seconds=60), (self.expires_at - self.issued_at) / 10)
        return now >= self.expires_at - margin


class TokenCache:
    """Tokens per (CorpNum, ServiceID). `fetch` issues a new token; calls for one member are
    serialised so that concurrent threads share one renewal instead of racing. `store` (a
    ledger.popbill.token_store.TokenStore) keeps them for other processes until they expire."""

    def __init__(self, fetch: Callable[[str], Token], now: Callable[[], dt.datetime] | None = None,
                 store=None) -> None:  # fmt: skip
        self._fetch = fetch
        self._now = now or (lambda: dt.datetime.now(dt.UTC))  # whose clock judges expiry
        self._store = store
        self._tokens: dict[str, Token] = {}
        # Striped: a lock per member would be kept for every member the process ever called.
        self._locks = [threading.Lock() for _ in range(64)]

    def _lock_for(self, corp_num: str) -> threading.Lock:
        return self._locks[hash(corp_num) % len(self._locks)]

    def get(self, corp_num: str) -> Token:
        with self._lock_for(corp_num):
            token = self._tokens.get(corp_num)
            if token is None and self._store is not None:
                token = self._store.load(corp_num)
            if token is None or token.needs_renewal(self._now()):
                token = self._fetch(corp_num)
                if self._store is not None:
                    self._store.save(token)
            self._tokens[corp_num] = token
            return token

    def invalidate(self, corp_num: str, token: Token) -> None:
        """Drop `token` unless another thread already replaced it."""
        with self._lock_for(corp_num):
            if self._tokens.get(corp_num) is token:
                del self._tokens[corp_num]
            if self._store is not None:
                self._store.forget(corp_num, token)
