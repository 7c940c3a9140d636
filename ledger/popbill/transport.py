"""HTTP transport: one pooled requests.Session, a timeout on every call, gzip handled.

It turns every failure to get a complete answer into a TransportError, recording whether
the request may have reached the server (`sent`), which the retry policy needs.
"""

from __future__ import annotations

import dataclasses

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ledger import __version__
from ledger.popbill.errors import ReadTimeoutError, TransportError

USER_AGENT = f"popbill-ledger/{__version__}"


@dataclasses.dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


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


class Transport:
    def __init__(
        self, *, connect_timeout: float, read_timeout: float, pool_size: int = 16, proxies: dict | None = None
    ) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        # Proxies are read from the environment once, by the caller, not on every request
        # (requests would walk os.environ each time: 3 ms of CPU per synced member).
        self.session.trust_env = False
        self.session.proxies.update(proxies or {})
        # No retries down here: the retry policy above decides, with the idempotency in view.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "gzip,deflate"})

    def send(self, method: str, url: str, *, headers: dict[str, str], body: bytes | None, call: str) -> RawResponse:
        try:
            response = self.session.request(method, url, headers=headers, data=body, timeout=self.timeout)
            content = response.content  # decompresses gzip; a truncated stream raises here
        except requests.exceptions.ConnectTimeout as exc:
            raise TransportError(f"connect timeout: {url}", sent=False, call=call) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise ReadTimeoutError(f"read timeout after {self.timeout[1]}s: {url}", sent=True, call=call) from exc
        except requests.exceptions.ConnectionError as exc:
            sent = not _never_sent(exc)
            reason = "connection dropped" if sent else "connection refused"
            raise TransportError(f"{reason}: {url}", sent=sent, call=call) from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise TransportError(f"truncated or undecodable answer: {url}", sent=True, call=call) from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"{type(exc).__name__}: {url}", sent=True, call=call) from exc
        return RawResponse(response.status_code, dict(response.headers), content)

    def close(self) -> None:
        self.session.close()
