"""The simulator's HTTP server: Linkhub auth paths and Popbill API paths on one loopback port,
plus private controls under /_sim/ for tests and demos."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import gzip
import hashlib
import hmac
import json
import math
import re
import secrets
import socket
import threading
import time
from collections import Counter, OrderedDict, deque
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from ledger.popbill.auth import DATE_FORMAT, signing_message
from ledger.secret import Secret
from ledger.settings import SANDBOX_LINK_ID, SANDBOX_SECRET_KEY
from ledger.simulator import errors as E
from ledger.simulator.faults import Fault, FaultPlan, rewrite
from ledger.simulator.world import SimConfig, World, fmt_points, to_tenths

SERVICE_IDS = ("POPBILL", "POPBILL_TEST")
POPUP_SECONDS = 30
DEFAULT_PER_PAGE, MAX_PER_PAGE = 500, 1000


@dataclasses.dataclass
class IssuedToken:
    corp_num: str
    service_id: str
    expires_at: float  # epoch seconds
    scope: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: str
    corp_num: str | None
    fault: str | None
    status: int
    received_at: float = 0.0  # time.time() when the request arrived, before any fault's wait


class Answer(Exception):
    """Raised by a route to send a ready answer. A cache_key lets its gzipped form be kept."""

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=utf-8",
        headers: dict | None = None,
        cache_key: tuple | None = None,
    ) -> None:
        self.status, self.body, self.content_type, self.headers = status, body, content_type, headers or {}
        self.cache_key = cache_key


class GzipCache:
    """Compressed page bodies, least recently used out first, bounded in bytes: compressing
    is most of the cost of serving a page, and a benchmark must measure the client."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._bodies: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def compressed(self, key: tuple | None, body: bytes) -> bytes:
        if key is None:
            return gzip.compress(body, compresslevel=1)
        with self._lock:
            packed = self._bodies.get(key)
            if packed is not None:
                self._bodies.move_to_end(key)
                return packed
        packed = gzip.compress(body, compresslevel=1)
        with self._lock:
            if key not in self._bodies:
                self._bodies[key] = packed
                self._size += len(packed)
            while self._size > self.max_bytes and self._bodies:
                _, dropped = self._bodies.popitem(last=False)
                self._size -= len(dropped)
        return packed


def _json(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _positive_amount(form: dict, key: str) -> None:
    try:
        amount = Decimal(str(form.get(key)))
        to_tenths(amount)
    except (InvalidOperation, ValueError):
        raise E.bad_request(E.BAD_FORM, f"{key} 값이 올바르지 않습니다.") from None
    if amount <= 0:
        raise E.bad_request(E.BAD_FORM, f"{key} 값은 0보다 커야 합니다.")


class Simulator:
    """A running simulator. Use as a context manager, or start() and stop()."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        link_id: str = SANDBOX_LINK_ID,
        secret_key: Secret | str = SANDBOX_SECRET_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float = 3600.0,
        date_skew: float = 300.0,
    ) -> None:
        self.world = World(config)
        self.faults = FaultPlan(self.world.config.seed)
        self.link_id = link_id
        self._secret = secret_key if isinstance(secret_key, Secret) else Secret(secret_key)
        self.token_lifetime = token_lifetime
        self.date_skew = date_skew
        self.tokens: dict[str, IssuedToken] = {}
        self.popups: dict[str, float] = {}
        self.log: deque[LoggedRequest] = deque(maxlen=200_000)
        self.in_flight = self.max_in_flight = 0  # calls being served now, and the most at once
        self.counts: Counter[str] = Counter()  # requests per path and status, unbounded by the log's cap
        self.gzip_cache = GzipCache()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.simulator = self
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._httpd.server_address[0]}:{self.port}"

    def start(self) -> Simulator:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="popbill-simulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- controls --------------------------------------------------------------------------

    def advance_days(self, days: int) -> dt.datetime:
        return self.world.advance_days(days)

    def skew_clock(self, seconds: float) -> None:
        """Set this server's clock `seconds` off the real time (GET /Time and date checks follow)."""
        self.world.skew_clock(seconds)

    def inject(self, kind: str, **options) -> Fault:
        return self.faults.add(Fault(kind, **options))

    def clear_faults(self) -> None:
        self.faults.clear()

    def arrived(self) -> None:
        """A call came in: counted while it is served (the most at once is kept)."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def left(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def caller(self, headers, body: bytes) -> str | None:
        """The member a call is for, before it is checked: a token request's access_id, or the
        holder of the session token it carries (faults aimed at one member need it)."""
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            with self._lock:
                token = self.tokens.get(authorization[len("Bearer ") :])
            return token.corp_num if token else None
        try:
            return str(json.loads(body)["access_id"])
        except (ValueError, KeyError, TypeError):
            return None

    def requests(self, path: str = "", method: str = "") -> list[LoggedRequest]:
        return [r for r in list(self.log) if r.path.startswith(path) and (not method or r.method == method)]

    def reset_requests(self) -> None:
        self.log.clear()

    def count(self, path: str, status: int) -> None:
        call = "Token" if path.endswith("/Token") else path.split("?")[0]
        with self._lock:
            self.counts[f"{call} {status}"] += 1

    def complete_payment(self, corp_num: str, settle_code: str):
        return self.world.complete_payment(corp_num, settle_code)

    def cancel_payment(self, corp_num: str, settle_code: str):
        return self.world.cancel_payment(corp_num, settle_code)

    def complete_refund(self, corp_num: str, refund_code: str):
        return self.world.complete_refund(corp_num, refund_code)

    def cancel_refund(self, corp_num: str, refund_code: str):
        return self.world.cancel_refund(corp_num, refund_code)

    def set_balance(self, corp_num: str, balance) -> None:
        self.world.set_balance(corp_num, balance)

    def expire_tokens(self) -> None:
        with self._lock:
            for token in self.tokens.values():
                token.expires_at = 0

    # -- auth ------------------------------------------------------------------------------

    def issue_token(self, path: str, headers, body: bytes, service_id: str) -> dict:
        authorization = headers.get("Authorization", "")
        parts = authorization.split(" ")
        if len(parts) != 3 or parts[0] != "LINKHUB":
            raise E.auth_error(E.BAD_SIGNATURE, "Authorization 헤더 형식이 올바르지 않습니다.")
        if parts[1] != self.link_id:
            raise E.auth_error(E.BAD_LINK_ID, "등록되지 않은 링크아이디입니다.")
        if headers.get("x-lh-version") != "2.0":
            raise E.auth_error(E.BAD_SIGNATURE, "x-lh-version 헤더가 올바르지 않습니다.")
        date = headers.get("x-lh-date", "")
        try:
            sent_at = dt.datetime.strptime(date, DATE_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            raise E.auth_error(E.STALE_DATE, "x-lh-date 형식이 올바르지 않습니다.") from None
        # A date is fresh against the simulated clock (what GET /Time answers), or against the
        # server's wall clock: advance_days stands for days passing on both sides, and a client
        # on its own clock never moved with them. Only a skewed server clock refuses it.
        clocks = (self.world.now(), self.world.wall_now())
        fresh = [c for c in clocks if abs((c - sent_at).total_seconds()) <= self.date_skew]
        if not fresh:
            raise E.auth_error(E.STALE_DATE, "요청 시간이 허용 범위를 벗어났습니다.")
        message = signing_message(body, date, headers.get("x-lh-forwarded"), path)
        expected = base64.b64encode(
            hmac.new(base64.b64decode(self._secret.reveal()), message.encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, parts[2]):
            raise E.auth_error(E.BAD_SIGNATURE, "서명이 일치하지 않습니다.")
        try:
            request = json.loads(body)
            access_id = str(request["access_id"])
            scope = [str(s) for s in request["scope"]]
        except (ValueError, KeyError, TypeError):
            raise E.bad_request(E.BAD_ACCESS_ID, "토큰 요청 본문이 올바르지 않습니다.") from None
        if len(access_id) != 10 or not access_id.isdigit():
            raise E.auth_error(E.BAD_ACCESS_ID, "access_id(사업자번호)가 올바르지 않습니다.")
        if "member" not in scope:
            raise E.auth_error(E.BAD_SCOPE, "scope에 member가 없습니다.")
        if self.world.member(access_id).closed:
            raise E.auth_error(E.MEMBER_CLOSED, "해지된 연동회원입니다.")
        token = secrets.token_urlsafe(32)
        expires_at = time.time() + self.token_lifetime
        with self._lock:
            self.tokens[token] = IssuedToken(access_id, service_id, expires_at, tuple(scope))
        # The expiry is written in the clock the client signed with, so either kind of client
        # judges it right; it is enforced in real seconds.
        expiration = (fresh[0] + dt.timedelta(seconds=self.token_lifetime)).astimezone(dt.UTC)
        return {
            "session_token": token,
            "serviceID": service_id,
            "linkID": self.link_id,
            "usercode": "SIM",
            "ipaddress": "127.0.0.1",
            "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.") + f"{expiration.microsecond // 1000:03d}Z",
            "scope": scope,
        }

    def bearer(self, headers, service_id: str | None = None) -> IssuedToken:
        authorization = headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            raise E.auth_error(E.BAD_TOKEN, "토큰이 없습니다.")
        with self._lock:
            token = self.tokens.get(authorization[len("Bearer ") :])
        if token is None:
            raise E.auth_error(E.BAD_TOKEN, "유효하지 않은 토큰입니다.")
        if token.expires_at <= time.time():
            raise E.auth_error(E.EXPIRED_TOKEN, "토큰이 만료되었습니다.")
        if service_id is not None and token.service_id != service_id:
            raise E.auth_error(E.TOKEN_SERVICE_MISMATCH, "토큰의 서비스아이디가 일치하지 않습니다.")
        if self.world.member(token.corp_num).closed:
            raise E.auth_error(E.MEMBER_CLOSED, "해지된 연동회원입니다.")
        return token

    def popup_url(self, target: str) -> str:
        key = secrets.token_hex(16)
        with self._lock:
            self.popups[key] = time.monotonic() + POPUP_SECONDS
        return f"{self.url}/popup/{target}/{key}"


def _page_args(query: dict) -> tuple[int, int]:
    try:
        page = int(query.get("Page", ["1"])[0])
        per_page = int(query.get("PerPage", [str(DEFAULT_PER_PAGE)])[0])
    except ValueError:
        raise E.bad_request(E.BAD_PAGING, "Page/PerPage 값이 올바르지 않습니다.") from None
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise E.bad_request(E.BAD_PAGING, "Page는 1 이상, PerPage는 1~1000 이어야 합니다.")
    return page, per_page


def _dates(query: dict) -> tuple[str, str]:
    values = []
    for name in ("SDate", "EDate"):
        raw = query.get(name, [""])[0]
        try:
            dt.datetime.strptime(raw, "%Y%m%d")
        except ValueError:
            raise E.bad_request(E.BAD_DATE, f"{name} 값이 올바르지 않습니다. (yyyyMMdd)") from None
        values.append(raw)
    if values[0] > values[1]:
        raise E.bad_request(E.BAD_DATE, "SDate가 EDate보다 늦습니다.")
    return values[0], values[1]


def _history_page(total: int, page: int, per_page: int, rows: list[bytes]) -> bytes:
    page_count = math.ceil(total / per_page)
    return b'{"code":1,"total":%d,"perPage":%d,"pageNum":%d,"pageCount":%d,"list":[%s]}' % (
        total,
        per_page,
        page,
        page_count,
        b",".join(rows),
    )


def _carries_token(path: str) -> bool:
    """Requests that carry a session token; a token request and GET /Time carry none."""
    return path != "/Time" and not path.endswith("/Token")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PopbillSimulator/1.0"

    def setup(self) -> None:
        super().setup()
        # Without this, headers and body leave in two segments and delayed ACK adds 40 ms a call.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args) -> None:  # noqa: A002 - the stdlib's name
        pass

    @property
    def sim(self) -> Simulator:
        return self.server.simulator

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        received_at = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query, keep_blank_values=True)
        control = path.startswith("/_sim/")
        fault = None
        if not control:
            bearer = _carries_token(path)
            caller = self.sim.caller(self.headers, body) if self.sim.faults.by_member else None
            fault = self.sim.faults.draw(method, path, bearer=bearer, corp_num=caller)
            self.sim.arrived()
        corp_num: list[str | None] = [None]
        try:
            self._serve(method, path, query, body, parts, fault, corp_num, received_at)
        finally:
            if not control:
                self.sim.left()

    def _serve(self, method, path, query, body, parts, fault, corp_num, received_at) -> None:
        try:
            if fault and fault.phase == "before":
                self._before_fault(fault)
            answer = self._route(method, path, query, body, corp_num)
        except Answer as ready:
            answer = ready
        except E.SimError as err:
            answer = Answer(err.status, _json({"code": err.code, "message": err.message}))
        except Exception as exc:  # a simulator bug must still answer, and loudly
            answer = Answer(500, _json({"code": -99999999, "message": f"simulator error: {exc!r}"}))
        status = answer.status
        self.sim.log.append(
            LoggedRequest(method, path, parts.query, corp_num[0], fault.kind if fault else None, status, received_at)
        )
        if not path.startswith("/_sim/"):
            self.sim.count(path, status)
        if fault and fault.phase == "after":
            self._after_fault(fault, answer)
            return
        self._send(answer)

    def _before_fault(self, fault: Fault) -> None:
        if fault.kind == "latency":
            self.sim.stopping.wait(fault.seconds)
            return
        if fault.kind == "status":
            raise Answer(fault.http_status, b"<html><body>Service Unavailable</body></html>", "text/html")
        if fault.kind == "rate_limit":
            raise Answer(429, b"Too Many Requests", "text/plain", {"Retry-After": f"{fault.retry_after:g}"})
        if fault.kind == "expired_token":
            raise E.auth_error(E.EXPIRED_TOKEN, "토큰이 만료되었습니다.")
        if fault.kind == "answer":
            raise Answer(fault.http_status, fault.body.encode())

    def _after_fault(self, fault: Fault, answer: Answer) -> None:
        if fault.kind == "drop":
            self.close_connection = True
            return
        if fault.kind == "stall":
            self.sim.stopping.wait(fault.seconds)
            self.close_connection = True
        elif fault.kind == "malformed_json":
            answer = Answer(200, answer.body[: max(1, len(answer.body) // 2)] + b"<<garbage")
        elif fault.kind == "rewrite":
            if fault.body is not None:
                answer = Answer(fault.http_status, fault.body.encode())
            else:
                try:
                    answer = Answer(answer.status, rewrite(answer.body, fault.edits or {}))
                except ValueError:
                    pass  # not a JSON object (GET /Time): sent as it was
        elif fault.kind == "truncated_gzip":
            packed = gzip.compress(answer.body, compresslevel=1)
            self._send_raw(
                200, packed[: len(packed) // 2], "application/json; charset=utf-8", {"Content-Encoding": "gzip"}
            )
            return
        try:
            self._send(answer)
        except OSError:
            pass  # the client gave up waiting, as intended

    def _send(self, answer: Answer) -> None:
        body, headers = answer.body, dict(answer.headers)
        if len(body) > 0 and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = self.sim.gzip_cache.compressed(answer.cache_key, body)
            headers["Content-Encoding"] = "gzip"
        self._send_raw(answer.status, body, answer.content_type, headers)

    def _send_raw(self, status: int, body: bytes, content_type: str, headers: dict) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        self.flush_headers()

    # -- routing -----------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict, body: bytes, corp_num: list) -> Answer:
        sim = self.sim
        if path.startswith("/_sim/"):
            return _controls(sim, method, path, query, body)
        if path.startswith("/popup/"):
            return self._popup(path)
        first = path.split("/")[1] if path.count("/") >= 1 else ""
        if first in SERVICE_IDS or path == "/Time":
            return self._auth_host(method, path, first, query, body, corp_num)
        if first not in {
            "EasyFin",
            "Member",
            "Payment",
            "PaymentHistory",
            "UseHistory",
            "Refund",
            "RefundHistory",
            "RefundPoint",
        }:
            raise E.SimError(404, E.NOT_FOUND, f"없는 경로입니다: {path}")
        if self.headers.get("x-pb-version") != "1.0":
            raise E.bad_request(E.BAD_VERSION, "x-pb-version 헤더가 필요합니다.")
        token = sim.bearer(self.headers)
        corp_num[0] = token.corp_num
        return _api(sim, method, path, query, body, token)

    def _auth_host(self, method, path, service_id, query, body, corp_num) -> Answer:
        sim = self.sim
        if method == "GET" and path == "/Time":
            return Answer(200, sim.world.now().astimezone(dt.UTC).strftime(DATE_FORMAT).encode(), "text/plain")
        if method == "POST" and path == f"/{service_id}/Token":
            answer = sim.issue_token(path, self.headers, body, service_id)
            corp_num[0] = None
            return Answer(200, _json(answer))
        token = sim.bearer(self.headers, service_id)
        corp_num[0] = token.corp_num
        world = sim.world
        if method == "GET" and path == f"/{service_id}/Point":
            return Answer(200, b'{"remainPoint":%s}' % fmt_points(world.reported_balance(token.corp_num)).encode())
        if method == "GET" and path == f"/{service_id}/PartnerPoint":
            return Answer(200, b'{"remainPoint":%s}' % fmt_points(world.partner_balance).encode())
        if method == "GET" and path == f"/{service_id}/URL":
            if query.get("TG", [""])[0] != "CHRG":
                raise E.bad_request(E.BAD_FORM, "TG 값이 올바르지 않습니다.")
            return Answer(200, _json({"url": sim.popup_url("partner-charge")}))
        raise E.SimError(404, E.NOT_FOUND, f"없는 경로입니다: {path}")

    def _popup(self, path: str) -> Answer:
        key = path.rsplit("/", 1)[-1]
        with self.sim._lock:
            deadline = self.sim.popups.get(key)
        if deadline is None or deadline < time.monotonic():
            return Answer(403, "<html><body>만료된 URL입니다.</body></html>".encode(), "text/html; charset=utf-8")
        return Answer(200, "<html><body>팝빌</body></html>".encode(), "text/html; charset=utf-8")


def _form(body: bytes) -> dict:
    try:
        data = json.loads(body or b"{}", parse_float=Decimal)
    except ValueError:
        raise E.bad_request(E.BAD_FORM, "요청 본문이 JSON이 아닙니다.") from None
    if not isinstance(data, dict):
        raise E.bad_request(E.BAD_FORM, "요청 본문이 객체가 아닙니다.")
    # Example code sends these keys in other capitalisations; accept them all.
    return {str(k).lower(): v for k, v in data.items()}


def _require(form: dict, *keys: str) -> None:
    for key in keys:
        value = form.get(key)
        if value is None or str(value).strip() == "":
            raise E.bad_request(E.BAD_FORM, f"{key} 값이 입력되지 않았습니다.")


def _api(sim: Simulator, method: str, path: str, query: dict, body: bytes, token: IssuedToken) -> Answer:
    world, corp = sim.world, token.corp_num
    if method == "GET" and path.startswith("/EasyFin/AccountCheck/"):
        if not {"182", "183"} & set(token.scope):
            raise E.auth_error(E.BAD_SCOPE, "예금주조회 서비스 권한(scope)이 없습니다.")
        service_type = query.get("serviceType", [""])[0]
        if service_type not in ("", "성명", "실명"):
            raise E.bad_request(E.BAD_FORM, "serviceType 값이 올바르지 않습니다.")
        cost = "25" if service_type in ("", "성명") else "50"
        if path == "/EasyFin/AccountCheck/UnitCost":
            if not service_type:
                raise E.bad_request(E.BAD_FORM, "serviceType 값이 입력되지 않았습니다.")
            return Answer(200, _json({"unitCost": cost}))
        if path == "/EasyFin/AccountCheck/ChargeInfo":
            return Answer(200, _json({"unitCost": cost, "chargeMethod": "연동회원 포인트", "rateSystem": "건당 과금"}))
    if method == "GET" and path == "/Member":
        target = query.get("TG", [""])[0]
        if target not in ("CHRG", "PAYMENT", "USEHISTORY"):
            raise E.bad_request(E.BAD_FORM, "TG 값이 올바르지 않습니다.")
        return Answer(200, _json({"url": sim.popup_url(target.lower())}))
    if method == "GET" and path == "/UseHistory":
        s_date, e_date = _dates(query)
        page, per_page = _page_args(query)
        order = query.get("Order", ["D"])[0] or "D"
        if order not in ("D", "A"):
            raise E.bad_request(E.BAD_PAGING, "Order 값이 올바르지 않습니다.")
        with world.lock:
            member, lo, hi = world.usage_window(corp, s_date, e_date)
            total, skip = hi - lo, (page - 1) * per_page
            if order == "A":
                rows = member.usage_json[lo + skip : min(hi, lo + skip + per_page)]
            else:
                end = hi - skip
                rows = member.usage_json[max(lo, end - per_page) : max(lo, end)][::-1]
            # The member's version changes with every new row, so a cached page is never stale.
            key = ("use", corp, s_date, e_date, page, per_page, order, member.version, member.held_back)
        return Answer(200, _history_page(total, page, per_page, rows), cache_key=key)
    if method == "GET" and path == "/PaymentHistory":
        s_date, e_date = _dates(query)
        page, per_page = _page_args(query)
        with world.lock:
            chosen = [p.wire() for p in world.member(corp).payments if s_date <= p.reg_dt[:8] <= e_date]
        chosen.reverse()  # newest first
        skip = (page - 1) * per_page
        return Answer(
            200, _history_page(len(chosen), page, per_page, [_json(r) for r in chosen[skip : skip + per_page]])
        )
    if method == "GET" and path == "/RefundHistory":
        page, per_page = _page_args(query)
        with world.lock:
            chosen = [r.wire() for r in world.member(corp).refunds]
        chosen.reverse()
        skip = (page - 1) * per_page
        return Answer(
            200, _history_page(len(chosen), page, per_page, [_json(r) for r in chosen[skip : skip + per_page]])
        )
    if method == "GET" and path.startswith("/Payment/"):
        payment = world.find_payment(corp, path[len("/Payment/") :])
        if payment is None:
            raise E.SimError(404, E.UNKNOWN_SETTLE_CODE, "존재하지 않는 정산코드입니다.")
        world.poll_payment(corp, payment)
        with world.lock:
            return Answer(200, _json(payment.wire()))
    if method == "GET" and path.startswith("/Refund/"):
        refund = world.find_refund(corp, path[len("/Refund/") :])
        if refund is None:
            raise E.SimError(404, E.UNKNOWN_REFUND_CODE, "존재하지 않는 환불코드입니다.")
        world.poll_refund(corp, refund)
        with world.lock:
            return Answer(200, _json(refund.wire()))
    if method == "GET" and path == "/RefundPoint":
        return Answer(200, b'{"refundableBalance":%s}' % fmt_points(world.member(corp).refundable).encode())
    if method == "POST" and path == "/Payment":
        form = _form(body)
        _require(form, "settlername", "settleremail", "notifyhp", "paymentname", "settlecost")
        _positive_amount(form, "settlecost")
        payment = world.request_payment(corp, form)
        return Answer(200, _json({"code": 1, "message": "접수되었습니다.", "settleCode": payment.settle_code}))
    if method == "POST" and path == "/Refund":
        form = _form(body)
        _require(form, "contactname", "tel", "requestpoint", "accountbank", "accountnum", "accountname", "reason")
        _positive_amount(form, "requestpoint")
        with world.lock:
            if to_tenths(form["requestpoint"]) > world.member(corp).refundable:
                raise E.bad_request(E.NOT_REFUNDABLE, "환불 가능 포인트를 초과하였습니다.")
            refund = world.request_refund(corp, form)
        return Answer(200, _json({"code": 1, "message": "접수되었습니다.", "refundCode": refund.refund_code}))
    raise E.SimError(404, E.NOT_FOUND, f"없는 경로입니다: {method} {path}")


_CONTROL = re.compile(r"^/_sim/(payments|refunds)/(\d{10})/([^/]+)/(complete|cancel)$")


def _controls(sim: Simulator, method: str, path: str, query: dict, body: bytes) -> Answer:
    data = json.loads(body or b"{}")
    if path == "/_sim/clock":
        if method == "POST":
            sim.advance_days(int(data.get("advance_days", 0)))
            if "skew_seconds" in data:
                sim.world.skew_clock(float(data["skew_seconds"]))
        return Answer(200, _json({"now": sim.world.now().isoformat()}))
    if path == "/_sim/faults":
        if method == "DELETE":
            sim.clear_faults()
            return Answer(200, _json({"faults": 0}))
        try:
            fault = sim.inject(**data)
        except (TypeError, ValueError) as exc:
            raise Answer(400, _json({"error": str(exc)})) from None
        return Answer(200, _json(dataclasses.asdict(fault)))
    if path == "/_sim/prepare" and method == "POST":
        sim.world.prepare(data.get("corp_nums", []))
        rows = sum(len(sim.world.member(c).usage_rows) for c in data.get("corp_nums", []))
        return Answer(200, _json({"usage_rows": rows}))
    usage_days = re.match(r"^/_sim/usage-days/(\d{10})$", path)
    if usage_days:
        with sim.world.lock:
            member, lo, hi = sim.world.usage_window(usage_days.group(1), "00000000", "99999999")
            counts: dict[str, int] = {}
            for tx_dt in member.tx_dts[lo:hi]:
                counts[tx_dt[:8]] = counts.get(tx_dt[:8], 0) + 1
        return Answer(200, _json(counts))
    if path == "/_sim/counts":
        with sim._lock:
            counts = dict(sim.counts)
        return Answer(200, _json({"counts": counts}))
    if path == "/_sim/requests":
        if method == "DELETE":
            sim.reset_requests()
        return Answer(200, _json({"requests": [dataclasses.asdict(r) for r in sim.requests()]}))
    match = _CONTROL.match(path)
    if match and method == "POST":
        kind, corp, code, action = match.groups()
        handler = {
            ("payments", "complete"): sim.complete_payment,
            ("payments", "cancel"): sim.cancel_payment,
            ("refunds", "complete"): sim.complete_refund,
            ("refunds", "cancel"): sim.cancel_refund,
        }[(kind, action)]
        try:
            handler(corp, code)
        except KeyError as exc:
            raise Answer(404, _json({"error": str(exc)})) from None
        return Answer(200, _json({"ok": True}))
    balance = re.match(r"^/_sim/members/(\d{10})/balance$", path)
    if balance:
        if method == "POST":
            sim.set_balance(balance.group(1), data["balance"])
        return Answer(200, _json({"balance": str(sim.world.balance(balance.group(1)))}))
    raise Answer(404, _json({"error": f"no control at {path}"}))
