"""Client CPU of one HTTP call: our Transport against requests.Session.request and urllib3.

    python bench/http_call_bench.py [--calls 1000] [--rounds 4]

A local server answers an empty history page (keep-alive, one write per answer); the three
clients take turns, `--calls` calls each per round, and the process CPU time per call is
printed for every round, with each one's ratio to requests.Session.request.
"""

from __future__ import annotations

import argparse
import http.server
import socketserver
import sys
import threading
import time
from pathlib import Path

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.popbill.transport import Transport  # noqa: E402

BODY = b'{"code":1,"total":0,"perPage":1000,"pageNum":1,"pageCount":1,"list":[]}'
HEADERS = {"Authorization": "Bearer " + "x" * 40, "x-pb-version": "1.0", "Accept": "application/json"}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # headers and body in one write: no delayed-ACK stalls

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    server = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/UseHistory?SDate=20261101&EDate=20261126&Page=1&PerPage=1000"

    session = requests.Session()
    session.trust_env = False
    ours = Transport(connect_timeout=5, read_timeout=30)
    pool = urllib3.PoolManager(maxsize=4)

    def with_session() -> None:
        response = session.request("GET", url, headers=HEADERS, timeout=(5, 30), stream=True)
        response.raw.read(65536, decode_content=True)
        response.close()

    def with_transport() -> None:
        ours.send("GET", url, headers=HEADERS, body=None, call="bench")

    def with_urllib3() -> None:
        response = pool.urlopen("GET", url, headers=HEADERS, retries=False, redirect=False, preload_content=False)
        response.read(65536, decode_content=True)
        response.release_conn()

    clients = {"requests.Session.request": with_session, "ledger Transport.send": with_transport,
               "urllib3 urlopen": with_urllib3}  # fmt: skip
    per_call: dict[str, list[float]] = {name: [] for name in clients}
    for client in clients.values():
        client()  # connect outside the figures
    for _ in range(args.rounds):
        for name, client in clients.items():
            started = time.process_time()
            for _ in range(args.calls):
                client()
            per_call[name].append((time.process_time() - started) / args.calls * 1e6)
    server.shutdown()
    baseline = per_call["requests.Session.request"]
    print(f"client CPU per call (process time, server in the same process), {args.calls} calls x {args.rounds} rounds")
    for name, figures in per_call.items():
        ratios = " ".join(f"{f / b:.2f}" for f, b in zip(figures, baseline, strict=True))
        print(f"{name:26} {' '.join(f'{f:6.0f}' for f in figures)} us   ratio to Session.request: {ratios}")


if __name__ == "__main__":
    main()
