"""The requestor: auth headers, the token dance, error mapping and JSON decoding."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from ledger import jsonutil
from ledger.popbill import auth
from ledger.popbill.clock import LocalClock, ServerClock, parse_server_time
from ledger.popbill.errors import (
    AuthError,
    BusinessError,
    ClockError,
    InvalidRequestError,
    MalformedAnswerError,
    PopbillError,
    RateLimitError,
    ServerError,
)
from ledger.popbill.gate import Gate
from ledger.popbill.models import ShapeError
from ledger.popbill.retry import call_with_retries
from ledger.popbill.transport import RawResponse, Transport
from ledger.settings import Settings

POPBILL_API_VERSION = "1.0"
# Scopes of one token: member services plus the account-check (예금주조회) services 182/183,
# so a single token per member serves all sixteen calls.
SCOPES = ["member", "182", "183"]
# A token that expires sooner than this after it was issued (by our clock) is doubt: either
# Linkhub's clock or ours is wrong, and using it would mean a new token for every call.
MIN_TOKEN_SECONDS = 30

T = TypeVar("T")


@dataclasses.dataclass
class CallStats:
    """What the client spent, for benchmarks and sync-run records."""

    http_requests: int = 0
    api_calls: int = 0
    token_requests: int = 0
    http_seconds: float = 0.0
    parse_seconds: float = 0.0
    wire_bytes: int = 0  # received, before decoding
    body_bytes: int = 0  # after decoding
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
        # Invalid UTF-8 and raw control characters inside strings would otherwise make the
        # whole page unreadable on every run; row screening deals with what they leave.
        data = jsonutil.loads(raw.body) if raw.body else None
    except ValueError:
        data = None
    if raw.status == 200:
        if not isinstance(data, dict):
            raise MalformedAnswerError("malformed JSON answer", status=200, call=call, body=text_preview)
        refused = _error_code(data)
        if refused is not None:
            # Popbill's error form is an error whatever the status it came with.
            message = data.get("message")
            raise BusinessError(
                str(message) if message else f"error code {refused} with no message",
                code=refused, status=200, call=call, body=text_preview,
            )  # fmt: skip
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


def _error_code(data: dict) -> int | None:
    """The negative code of Popbill's error form ({"code": -11000010, "message": ...}), or None."""
    value = data.get("code")
    if type(value) is str and value.startswith("-") and value[1:].isascii() and value[1:].isdigit():
        value = int(value)
    return value if type(value) is int and value < 0 else None


def _preview(answer: dict) -> str:
    return json.dumps(answer, ensure_ascii=False, default=str)[:500]


def environment_proxies(*urls: str) -> dict[str, str]:
    """HTTP(S)_PROXY / NO_PROXY as they apply to our two hosts, read once."""
    proxies: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url)
        proxy = requests.utils.get_environ_proxies(url).get(parts.scheme)
        if proxy:
            proxies[f"{parts.scheme}://{parts.hostname}"] = proxy  # requests matches scheme://host first
    return proxies


def refuse_sandbox_credentials_on_real_hosts(settings: Settings) -> None:
    """The sandbox's LinkID and key open nothing on Linkhub's hosts, but a real host should
    never see them (nor the partner's members be asked about under them): say what to configure
    instead. Commands call it before their first request, so it is said once, not per call."""
    if settings.uses_sandbox_credentials and settings.real_hosts:
        raise InvalidRequestError(
            "POPBILL_LINK_ID",
            f"is the sandbox's (so is the key), not for {settings.real_hosts[0]}: set POPBILL_LINK_ID and"
            ' POPBILL_SECRET_KEY, or point this shell at the sandbox with eval "$(ledger sandbox env)"',
            call="Token",
        )


# Told of every call once it is over: (call name, seconds, the error or None, attempts made).
# The application passes one that counts calls in its metrics; the client itself keeps none.
CallObserver = Callable[[str, float, BaseException | None, int], None]


def _token_store(settings: Settings):
    """The on-disk token cache POPBILL_TOKEN_CACHE names, or None. 'auto' keeps tokens for
    Linkhub's own hosts only: a simulator forgets its tokens when it stops, so a kept one
    would cost a refusal and a renewal instead of saving a call."""
    where = settings.token_cache
    if where == "off" or (where == "auto" and not settings.real_hosts):
        return None
    from ledger.popbill.token_store import TokenStore  # lazy: sqlite3 only where tokens are kept

    path = settings.ledger_home / "popbill-tokens.sqlite3" if where == "auto" else Path(where).expanduser()
    return TokenStore(path, partner=f"{settings.link_id}\x1f{settings.service_id}\x1f{settings.resolved_auth_url}")


class Requestor:
    def __init__(
        self, settings: Settings, transport: Transport | None = None, *, observer: CallObserver | None = None
    ) -> None:
        self.settings = settings
        self.observer = observer
        self.transport = transport or Transport(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_response_bytes=settings.max_response_bytes,
            max_decoded_bytes=settings.max_decoded_bytes,
            pool_size=settings.max_concurrency,  # as many kept-alive connections as calls in flight
            proxies=environment_proxies(settings.resolved_api_url, settings.resolved_auth_url),
        )
        self.gate = Gate(settings.max_concurrency)
        self.stats = CallStats()
        self.api_url = settings.resolved_api_url
        self.auth_url = settings.resolved_auth_url
        self.clock = LocalClock() if settings.use_local_time else ServerClock(self.server_time)
        self.token_store = _token_store(settings)
        self.tokens = auth.TokenCache(self._issue_token, now=self.clock.now, store=self.token_store)

    def close(self) -> None:
        self.transport.close()
        if self.token_store is not None:
            self.token_store.close()

    def _exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, call: str, deadline: float
    ) -> RawResponse:
        """One HTTP exchange through the process's gate; a 429 pauses every thread of the process."""
        with self.gate:
            started = time.perf_counter()
            try:
                raw = self.transport.send(method, url, headers=headers, body=body, call=call, deadline=deadline)
            finally:
                self.stats.add(http_requests=1, http_seconds=time.perf_counter() - started)
        self.stats.add(wire_bytes=raw.wire_bytes, body_bytes=len(raw.body))
        if raw.status == 429:
            # Every thread of the process waits, not just the one that was told.
            self.gate.pause(_retry_after(raw.headers) or self.settings.retry_backoff)
        return raw

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, call: str, deadline: float
    ) -> dict:
        raw = self._exchange(method, url, headers, body, call, deadline)
        started = time.perf_counter()
        try:
            return decode_answer(raw, call)
        finally:
            self.stats.add(parse_seconds=time.perf_counter() - started)

    def server_time(self) -> dt.datetime:
        """Linkhub's clock: GET /Time on the auth host (no token; answers yyyy-MM-ddTHH:mm:ssZ)."""

        deadline = time.monotonic() + self.settings.call_deadline

        def ask() -> dt.datetime:
            raw = self._exchange("GET", self.auth_url + "/Time", {}, None, "Time", deadline)
            if raw.status != 200:
                decode_answer(raw, "Time")  # raises the matching error
            try:
                return parse_server_time(raw.body.decode("utf-8", "replace"))
            except ValueError as exc:
                raise MalformedAnswerError(f"malformed time answer: {exc}", status=200, call="Time") from None

        settings = self.settings
        return call_with_retries(
            ask,
            idempotent=True,
            attempts=settings.retry_attempts,
            max_seconds=settings.retry_max_seconds,
            base=settings.retry_backoff,
        )

    def _issue_token(self, corp_num: str) -> auth.Token:
        """A token, checked: one whose expiry is already past (or about to be) by our clock is
        asked for once more, then refused with the clock named."""
        token = self._request_token(corp_num)
        if self._lives(token):
            return token
        token = self._request_token(corp_num)
        if self._lives(token):
            return token
        which = (
            "this machine's clock (POPBILL_USE_LOCAL_TIME=true)" if self.settings.use_local_time
            else "Popbill's clock as GET /Time gave it (POPBILL_USE_LOCAL_TIME=false)"
        )  # fmt: skip
        raise ClockError(
            f"Linkhub issued a token for {corp_num} that expires at {token.expires_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{'already past' if token.expires_at <= token.issued_at else 'within seconds'} by {which}, "
            f"which reads {token.issued_at:%Y-%m-%d %H:%M:%S} UTC: fix this machine's clock (NTP)"
            + (", or set POPBILL_USE_LOCAL_TIME=false to go by Popbill's" if self.settings.use_local_time else ""),
            call="Token",
        )

    @staticmethod
    def _lives(token: auth.Token) -> bool:
        return token.expires_at - token.issued_at >= dt.timedelta(seconds=MIN_TOKEN_SECONDS)

    def _request_token(self, corp_num: str) -> auth.Token:
        settings = self.settings
        refuse_sandbox_credentials_on_real_hosts(settings)
        path = f"/{settings.service_id}/Token"
        body = auth.token_request_body(corp_num, SCOPES)
        now = self.clock.now()
        date = auth.utc_stamp(now)
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
        deadline = time.monotonic() + settings.call_deadline
        answer = self._send("POST", self.auth_url + path, headers, body, "Token", deadline)
        try:
            return auth.Token.from_answer(answer, corp_num, issued_at=now, default_service=settings.service_id)
        except ShapeError as exc:
            # Never the body: it may hold a session token.
            raise MalformedAnswerError(
                f"Token answered outside the documented shape: {exc}", field=exc.field, status=200, call="Token"
            ) from None

    def _authorised(
        self, call: str, method: str, url_for, corp_num: str, headers: dict, body: bytes | None, deadline: float
    ) -> dict:
        """One try with the cached token; on an auth failure, renew it once and try again."""

        def send_with(token: auth.Token) -> dict:
            bearer = {"Authorization": f"Bearer {token.session_token.reveal()}"}
            return self._send(method, url_for(token), {**headers, **bearer}, body, call, deadline)

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
        parse: Callable[[dict], T] | None = None,
    ) -> T:
        """`host` 'api' sends to the Popbill API; 'auth' to Linkhub under /{ServiceID}{path}.
        `parse` turns the answer into its typed result (ledger.popbill.models): inside the
        retries, so an answer outside the documented shape is tried again like a garbled one
        (never for a call that is not idempotent: its outcome is then unknown)."""
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
        # One deadline for the whole call, every attempt included: no answer, however slowly
        # it trickles in, holds a sync longer than this.
        deadline = time.monotonic() + settings.call_deadline
        tries = 0

        def attempt() -> T:
            nonlocal tries
            tries += 1
            answer = self._authorised(call, method, url_for, corp_num, headers, body, deadline)
            if parse is None:
                return answer
            try:
                return parse(answer)
            except ShapeError as exc:
                raise MalformedAnswerError(
                    f"{call} answered outside the documented shape: {exc}", field=exc.field, status=200, call=call,
                    body=_preview(answer),
                ) from None

        started, failure = time.perf_counter(), None
        try:
            return call_with_retries(
                attempt,
                idempotent=idempotent,
                attempts=settings.retry_attempts,
                max_seconds=min(settings.retry_max_seconds, settings.call_deadline),
                base=settings.retry_backoff,
            )
        except Exception as exc:
            failure = exc
            raise
        finally:
            if self.observer is not None:
                self.observer(call, time.perf_counter() - started, failure, tries)
