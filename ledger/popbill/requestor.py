"""The requestor: auth headers, the token dance, error mapping and JSON decoding."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from ledger.popbill import auth
from ledger.popbill.errors import (
    AuthError,
    BusinessError,
    PopbillError,
    RateLimitError,
    ServerError,
    TransportError,
)
from ledger.popbill.gate import Gate
from ledger.popbill.retry import call_with_retries
from ledger.popbill.transport import RawResponse, Transport
from ledger.secret import Secret
from ledger.settings import Settings

POPBILL_API_VERSION = "1.0"
# Scopes of one token: member services plus the account-check (예금주조회) services 182/183,
# so a single token per member serves all sixteen calls.
SCOPES = ["member", "182", "183"]


@dataclasses.dataclass
class CallStats:
    """What the client spent, for benchmarks and sync-run records."""

    http_requests: int = 0
    api_calls: int = 0
    token_requests: int = 0
    http_seconds: float = 0.0
    parse_seconds: float = 0.0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def decode_answer(raw: RawResponse, call: str) -> dict[str, Any]:
    """Map an HTTP answer to its JSON dict, or to the right error."""
    text_preview = raw.body[:500].decode("utf-8", "replace")
    try:
        data = json.loads(raw.body, parse_float=Decimal) if raw.body else None
    except ValueError:
        data = None
    if raw.status == 200:
        if not isinstance(data, dict):
            raise TransportError("malformed JSON answer", sent=True, status=200, call=call, body=text_preview)
        return data
    code = message = None
    if isinstance(data, dict) and "code" in data:
        try:
            code = int(data["code"])
            message = str(data.get("message") or "")
        except (TypeError, ValueError):
            code = None
    if raw.status == 429:
        raise RateLimitError(
            message or "rate limited",
            retry_after=_retry_after(raw.headers),
            code=code,
            status=429,
            call=call,
            body=text_preview,
        )
    if raw.status >= 500 and (code is None or code >= 0):
        raise ServerError(
            f"server error HTTP {raw.status}",
            retry_after=_retry_after(raw.headers),
            status=raw.status,
            call=call,
            body=text_preview,
        )
    if raw.status in (401, 403):
        raise AuthError(message or f"HTTP {raw.status}", code=code, status=raw.status, call=call, body=text_preview)
    if code is not None:
        raise BusinessError(message or "", code=code, status=raw.status, call=call, body=text_preview)
    raise PopbillError(f"unexpected HTTP {raw.status}", status=raw.status, call=call, body=text_preview)


def environment_proxies(*urls: str) -> dict[str, str]:
    """HTTP(S)_PROXY / NO_PROXY as they apply to our two hosts, read once."""
    proxies: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url)
        proxy = requests.utils.get_environ_proxies(url).get(parts.scheme)
        if proxy:
            proxies[f"{parts.scheme}://{parts.hostname}"] = proxy  # requests matches scheme://host first
    return proxies


class Requestor:
    def __init__(self, settings: Settings, transport: Transport | None = None) -> None:
        self.settings = settings
        self.transport = transport or Transport(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            pool_size=settings.max_concurrency,  # as many kept-alive connections as calls in flight
            proxies=environment_proxies(settings.resolved_api_url, settings.resolved_auth_url),
        )
        self.gate = Gate(settings.max_concurrency)
        self.tokens = auth.TokenCache(self._issue_token)
        self.stats = CallStats()
        self.api_url = settings.resolved_api_url
        self.auth_url = settings.resolved_auth_url

    def close(self) -> None:
        self.transport.close()

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | None, call: str) -> dict:
        with self.gate:
            started = time.perf_counter()
            try:
                raw = self.transport.send(method, url, headers=headers, body=body, call=call)
            finally:
                self.stats.add(http_requests=1, http_seconds=time.perf_counter() - started)
        if raw.status == 429:
            # Every thread of the process waits, not just the one that was told.
            self.gate.pause(_retry_after(raw.headers) or self.settings.retry_backoff)
        started = time.perf_counter()
        try:
            return decode_answer(raw, call)
        finally:
            self.stats.add(parse_seconds=time.perf_counter() - started)

    def _issue_token(self, corp_num: str) -> auth.Token:
        settings = self.settings
        path = f"/{settings.service_id}/Token"
        body = auth.token_request_body(corp_num, SCOPES)
        date = auth.utc_stamp()
        forwarded = None if settings.ip_restrict else "*"
        signature = auth.sign(settings.secret_key, auth.signing_message(body, date, forwarded, path))
        headers = {
            "x-lh-date": date,
            "x-lh-version": auth.API_VERSION,
            "Content-Type": "Application/json",
            "Authorization": f"LINKHUB {settings.link_id} {signature}",
        }
        if forwarded is not None:
            headers["x-lh-forwarded"] = forwarded
        self.stats.add(token_requests=1)
        answer = self._send("POST", self.auth_url + path, headers, body, "Token")
        try:
            return auth.Token(
                session_token=Secret(str(answer["session_token"])),
                service_id=str(answer.get("serviceID") or settings.service_id),
                corp_num=corp_num,
                expires_at=auth.parse_expiration(str(answer["expiration"])),
                issued_at=dt.datetime.now(dt.UTC),
                scope=tuple(answer.get("scope") or ()),
            )
        except (KeyError, ValueError) as exc:
            raise TransportError(f"malformed token answer: {exc}", sent=True, call="Token") from None

    def _authorised(self, call: str, method: str, url_for, corp_num: str, headers: dict, body: bytes | None) -> dict:
        """One try with the cached token; on an auth failure, renew it once and try again."""

        def send_with(token: auth.Token) -> dict:
            bearer = {"Authorization": f"Bearer {token.session_token.reveal()}"}
            return self._send(method, url_for(token), {**headers, **bearer}, body, call)

        token = self.tokens.get(corp_num)
        try:
            return send_with(token)
        except AuthError:
            self.tokens.invalidate(corp_num, token)
            return send_with(self.tokens.get(corp_num))

    def call(
        self,
        call: str,
        method: str,
        path: str,
        corp_num: str,
        *,
        user_id: str | None = None,
        payload: dict | None = None,
        idempotent: bool = True,
        host: str = "api",
    ) -> dict:
        """`host` 'api' sends to the Popbill API; 'auth' to Linkhub under /{ServiceID}{path}."""
        headers: dict[str, str] = {}
        if host == "api":
            headers["x-pb-version"] = POPBILL_API_VERSION
            if user_id:
                headers["x-pb-userid"] = user_id

            def url_for(_token):
                return self.api_url + path
        else:

            def url_for(token):
                return f"{self.auth_url}/{token.service_id}{path}"

        body = None
        if payload is not None:
            body = json.dumps(payload, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json; charset=utf8"
        self.stats.add(api_calls=1)
        settings = self.settings
        return call_with_retries(
            lambda: self._authorised(call, method, url_for, corp_num, headers, body),
            idempotent=idempotent,
            attempts=settings.retry_attempts,
            max_seconds=settings.retry_max_seconds,
            base=settings.retry_backoff,
        )
