"""HTTP transport: one pooled requests.Session, a timeout on every call, gzip handled.

It turns every failure to get a complete answer into a TransportError, recording whether
the request may have reached the server (`sent`), which the retry policy needs.

An answer is read as a stream and bounded three ways, because the server on the other end
may be broken or hostile: bytes on the wire (`max_response_bytes`), bytes after gzip or
deflate decoding (`max_decoded_bytes`; urllib3 inflates with a bounded output per read, so
a gzip bomb is stopped after the limit, not after it filled memory), and an overall
deadline for the whole exchange: a server trickling one byte per second never trips a
read timeout, so a watchdog shuts the socket when the deadline passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import os
import socket
import threading
import time

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ledger import __version__
from ledger.popbill.errors import DeadlineExceededError, ReadTimeoutError, ResponseTooLargeError, TransportError

USER_AGENT = f"popbill-ledger/{__version__}"
CHUNK = 64 * 1024


@dataclasses.dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    wire_bytes: int = 0  # bytes received before decoding


def _never_sent(exc: BaseException) -> bool:
    """True when the TCP connection was never established, so no byte of the request left."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)):
            return True
        if isinstance(current, ConnectionRefusedError):
            return True
        if isinstance(current, urllib3.exceptions.MaxRetryError):
            stack.append(current.reason)
        stack.extend([current.__cause__, current.__context__])
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return False


def _past_deadline(seconds: float, url: str, call: str) -> DeadlineExceededError:
    return DeadlineExceededError(
        f"no complete answer within the deadline of {seconds:.1f}s: {url}", sent=True, call=call
    )


class _Watchdog:
    """Shuts the socket of this thread's current exchange when its deadline passes."""

    current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self.done = False
        self._conn = None
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + max(seconds, 0.0)

    def __enter__(self) -> _Watchdog:
        _Watchdog.current.value = self
        _WATCHDOGS.add(self._deadline, self)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.done, self._conn = True, None
        _Watchdog.current.value = None

    def watch(self, conn) -> None:
        with self._lock:
            self._conn = conn
            fired = self.fired
        if fired:
            self._shut(conn)

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            conn = self._conn
        if conn is not None:
            self._shut(conn)

    @staticmethod
    def _shut(conn) -> None:
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


class _Deadlines:
    """One thread fires every watchdog of the process when its deadline passes (a timer
    thread per exchange cost a thread start and stop per call). Exchanges that end in time
    are dropped when they come up, without waking the thread."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child has no thread, maybe a held lock

    def _reset(self) -> None:
        self._ready = threading.Condition()
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: float, watchdog: _Watchdog) -> None:
        with self._ready:
            heapq.heappush(self._heap, (deadline, next(self._order), watchdog))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="popbill-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watchdog:  # sooner than what the thread waits for
                self._ready.notify()

    def _run(self) -> None:
        with self._ready:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._ready.wait()
                    continue
                left = self._heap[0][0] - time.monotonic()
                if left > 0:
                    self._ready.wait(left)
                    continue
                heapq.heappop(self._heap)[2].fire()


_WATCHDOGS = _Deadlines()


class _WatchedPool:
    """Tells the thread's watchdog which connection an exchange uses, so it can be shut."""

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        watchdog = getattr(_Watchdog.current, "value", None)
        if watchdog is not None:
            watchdog.watch(conn)
        return conn


class _WatchedHTTPPool(_WatchedPool, HTTPConnectionPool):
    pass


class _WatchedHTTPSPool(_WatchedPool, HTTPSConnectionPool):
    pass


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """Pools (direct or through a proxy) whose connections the watchdog can shut."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy, **kwargs):
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class Transport:
    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int = 16,
        max_response_bytes: int = 16 * 2**20,
        max_decoded_bytes: int = 32 * 2**20,
        proxies: dict | None = None,
    ) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.max_response_bytes = max_response_bytes
        self.max_decoded_bytes = max_decoded_bytes
        self.session = requests.Session()
        # Proxies are read from the environment once, by the caller, not on every request
        # (requests would walk os.environ each time: 3 ms of CPU per synced member).
        self.session.trust_env = False
        self.session.proxies.update(proxies or {})
        # No retries down here: the retry policy above decides, with the idempotency in view.
        self._adapter = _WatchedAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", self._adapter)
        self.session.mount("https://", self._adapter)
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "gzip,deflate"})

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None,
        call: str,
        deadline: float | None = None,
    ) -> RawResponse:
        """`deadline` is a time.monotonic() value by which the whole exchange must be over."""
        remaining = float("inf") if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError(f"deadline passed before sending: {url}", sent=False, call=call)
        timeout = (min(self.timeout[0], remaining), min(self.timeout[1], remaining))
        watchdog = _Watchdog(remaining) if deadline is not None else contextlib.nullcontext()
        with watchdog:
            try:
                response = self._adapter.send(
                    self._prepare(method, url, headers, body),
                    stream=True, timeout=timeout, proxies=self.session.proxies,
                )  # fmt: skip
                try:
                    content, wire = self._read_body(response, call, url)
                finally:
                    response.close()  # a no-op after a complete read, which gave the connection back
                if getattr(watchdog, "fired", False):  # a shut socket can look like a short, complete answer
                    raise _past_deadline(remaining, url, call)
            except (ResponseTooLargeError, DeadlineExceededError):
                raise
            except Exception as exc:
                if getattr(watchdog, "fired", False):
                    raise _past_deadline(remaining, url, call) from exc
                raise self._transport_error(exc, url, call) from exc
        return RawResponse(response.status_code, dict(response.headers), content, wire)

    def _prepare(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> requests.PreparedRequest:
        """The request, for the adapter directly: Session.request's merging of settings,
        cookies and hooks and its redirect handling cost a fifth of a call's client CPU
        (bench/http_call_bench.py), four calls per synced member. And a Popbill answer is
        never a redirect to follow (one would carry the bearer token elsewhere): a 3xx is an
        unexpected answer."""
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=url, headers={**self.session.headers, **headers}, data=body)
        return prepared

    def _read_body(self, response: requests.Response, call: str, url: str) -> tuple[bytes, int]:
        """The decoded body, read in chunks and stopped as soon as a limit is crossed."""
        raw = response.raw
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise ResponseTooLargeError(
                f"answer of {declared} bytes is over the limit of {self.max_response_bytes}: {url}",
                received=0, decoded=0, sent=True, call=call,
            )  # fmt: skip
        chunks, decoded = [], 0
        while True:
            chunk = raw.read(CHUNK, decode_content=True)
            if not chunk:
                break
            decoded += len(chunk)
            chunks.append(chunk)
            received = raw.tell()
            if received > self.max_response_bytes or decoded > self.max_decoded_bytes:
                which = "on the wire" if received > self.max_response_bytes else "decoded"
                limit = self.max_response_bytes if which == "on the wire" else self.max_decoded_bytes
                raise ResponseTooLargeError(
                    f"answer over the limit of {limit} bytes {which}: {url}",
                    received=received, decoded=decoded, sent=True, call=call,
                )  # fmt: skip
        body = b"".join(chunks)
        raw.release_conn()
        return body, raw.tell()

    def _transport_error(self, exc: BaseException, url: str, call: str) -> TransportError:
        if isinstance(exc, (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
            return TransportError(f"connect timeout: {url}", sent=False, call=call)
        if isinstance(exc, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)):
            return ReadTimeoutError(f"read timeout after {self.timeout[1]}s: {url}", sent=True, call=call)
        if isinstance(exc, requests.exceptions.ConnectionError):
            sent = not _never_sent(exc)
            reason = "connection dropped" if sent else "connection refused"
            return TransportError(f"{reason}: {url}", sent=sent, call=call)
        if isinstance(exc, (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError)):
            # a cut or undecodable stream (ProtocolError, DecodeError, IncompleteRead) while reading the body
            return TransportError(f"truncated or undecodable answer: {url}", sent=True, call=call)
        raise exc

    def close(self) -> None:
        self.session.close()
