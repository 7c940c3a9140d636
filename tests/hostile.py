"""A hostile stand-in for Popbill's auth and API hosts, on one free loopback port.

Tokens are always granted; each history call (/UseHistory, /PaymentHistory, /RefundHistory)
is answered by the test's `script(path, page_no)`, which returns one of the answers below:
a JSON page (NaN and Infinity literals allowed), a body far over any sane size, a gzip
bomb, or a body trickled a byte at a time. The server counts what it was asked and what it
managed to send, so tests assert on bytes, never on memory or elapsed time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNK = 64 * 1024


@dataclasses.dataclass
class Json:
    data: object  # json.dumps'ed with allow_nan, so float('nan') goes out as the literal NaN


@dataclasses.dataclass
class Raw:
    """Bytes as they are: raw control characters, invalid UTF-8."""

    body: bytes


@dataclasses.dataclass
class Huge:
    """A page whose one row's userName is `size` bytes of 'A', streamed in chunks."""

    size: int


@dataclasses.dataclass
class GzipBomb:
    """A page whose one row's userName inflates to `size` bytes; a few hundred KB on the wire."""

    size: int


@dataclasses.dataclass
class Redirect:
    """A 302 to `location` (where a followed redirect would carry the bearer token)."""

    location: str


@dataclasses.dataclass
class Trickle:
    """`body` one byte every `interval` seconds; in the headers too when `headers` is set."""

    body: bytes
    interval: float
    headers: bool = False


def page(rows: list, *, total: int | None = None, per_page: int = 1000, page_no: int = 1, page_count=None) -> Json:
    total = len(rows) if total is None else total
    count = page_count if page_count is not None else -(-total // per_page) if total else 1
    return Json({"code": 1, "total": total, "perPage": per_page, "pageNum": page_no, "pageCount": count, "list": rows})


def usage_row(n: int, day: dt.date, **fields) -> dict:
    """A plausible use-history row, distinct for each n."""
    row = {
        "itemCode": 121, "txType": 2, "txPoint": "10", "balance": str(100000 - 10 * n),
        "txDT": f"{day:%Y%m%d}{n // 3600 % 24:02d}{n // 60 % 60:02d}{n % 60:02d}",
        "serviceUserID": "svc", "userID": "user01", "userName": f"사용자 {n}",
    }  # fmt: skip
    row.update(fields)
    return row


def payment_row(n: int, day: dt.date, **fields) -> dict:
    row = {
        "productType": "포인트 충전", "productName": "포인트", "settleType": "무통장", "settlerName": f"입금자 {n}",
        "settlerEmail": "a@example.com", "settleCost": "11000", "settlePoint": "10000", "settleState": 2,
        "regDT": f"{day:%Y%m%d}1000{n % 60:02d}", "stateDT": f"{day:%Y%m%d}1100{n % 60:02d}",
    }  # fmt: skip
    row.update(fields)
    return row


def refund_row(n: int, day: dt.date, **fields) -> dict:
    row = {
        "reqDT": f"{day:%Y%m%d}1200{n % 60:02d}", "requestPoint": "5000", "accountBank": "국민",
        "accountNum": "123-456", "accountName": f"예금주 {n}", "state": 1, "reason": "환불",
    }  # fmt: skip
    row.update(fields)
    return row


def _bomb(size: int) -> bytes:
    head = json.dumps({"code": 1, "total": 1, "perPage": 1000, "pageNum": 1, "pageCount": 1,
                       "list": [{"txDT": "20260101000000", "userName": "@"}]}).encode()  # fmt: skip
    before, after = head.split(b"@")
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(before)]
    block = b"A" * 2**20
    for _ in range(size // len(block)):
        parts.append(packer.compress(block))
    parts += [packer.compress(after), packer.flush()]
    return b"".join(parts)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client hanging up on a hostile answer is the expected outcome, not news


class HostileServer:
    def __init__(self, script: Callable[[str, int], object]) -> None:
        self.script = script
        self.calls: list[tuple[str, int]] = []  # (path, page) of every history call
        self.bytes_sent = 0  # body bytes the server managed to hand to the socket
        self.answered = 0  # history calls whose answer is over (sent, or cut by the client)
        self.stopping = threading.Event()
        self._bombs: dict[int, bytes] = {}
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/Token"):
                    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                    self._json({"session_token": "hostile-token", "serviceID": "POPBILL_TEST", "expiration": expires,
                                "scope": ["member"]})  # fmt: skip
                else:
                    self._scripted()

            def do_GET(self) -> None:
                if urlsplit(self.path).path.endswith("/Point"):
                    self._json({"remainPoint": "1000"})
                else:
                    self._scripted()

            def _scripted(self) -> None:
                url = urlsplit(self.path)
                page_no = int(parse_qs(url.query).get("Page", ["1"])[0])
                hostile.calls.append((url.path, page_no))
                try:
                    self._answer(hostile.script(url.path, page_no))
                except OSError:
                    self.close_connection = True  # the client gave up, as it should
                finally:
                    hostile.answered += 1

            def _json(self, data, status: int = 200) -> None:
                self._raw(status, json.dumps(data, ensure_ascii=False).encode(), {})

            def _raw(self, status: int, body: bytes, headers: dict) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self._write(body)

            def _write(self, body: bytes) -> None:
                for start in range(0, len(body), CHUNK):
                    piece = body[start : start + CHUNK]
                    self.wfile.write(piece)
                    hostile.bytes_sent += len(piece)

            def _answer(self, answer) -> None:
                if isinstance(answer, Json):
                    self._raw(
                        200, json.dumps(answer.data, allow_nan=True).encode(), {}
                    )  # ASCII: escapes carry even unpaired surrogates
                elif isinstance(answer, Raw):
                    self._raw(200, answer.body, {})
                elif isinstance(answer, Huge):
                    self._huge(answer.size)
                elif isinstance(answer, GzipBomb):
                    bomb = hostile._bombs.get(answer.size) or hostile._bombs.setdefault(answer.size, _bomb(answer.size))
                    self._raw(200, bomb, {"Content-Encoding": "gzip"})
                elif isinstance(answer, Trickle):
                    self._trickle(answer)
                elif isinstance(answer, Redirect):
                    self._raw(302, b"", {"Location": answer.location})
                else:
                    raise TypeError(answer)

            def _huge(self, size: int) -> None:
                # Chunked, so no Content-Length warns the client: only reading tells.
                head, tail = b'{"code":1,"total":1,"perPage":1000,"pageNum":1,"pageCount":1,"list":[{"txDT":"20260101000000","userName":"', b'"}]}'  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = b"A" * CHUNK
                pieces = [head] + [block] * (size // CHUNK) + [tail]
                for piece in pieces:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    hostile.bytes_sent += len(piece)
                self.wfile.write(b"0\r\n\r\n")

            def _trickle(self, answer: Trickle) -> None:
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(answer.body)}\r\n\r\n"
                ).encode()
                if not answer.headers:
                    self.wfile.write(head)
                    self.wfile.flush()
                    head = b""
                for i in range(len(head) + len(answer.body)):
                    if hostile.stopping.wait(answer.interval):
                        return
                    byte = (head + answer.body)[i : i + 1]
                    self.wfile.write(byte)
                    self.wfile.flush()
                    if i >= len(head):
                        hostile.bytes_sent += 1

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def history_calls(self, path: str) -> list[int]:
        return [p for path_, p in self.calls if path_ == path]

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
