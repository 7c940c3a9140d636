"""The /metrics endpoint on prometheus-client's own WSGI server: the format Prometheus asks for
(OpenMetrics or the text format, prometheus-client's negotiation), gzip when accepted, HEAD.

The app is ours because the per-member block is rendered and gzipped apart (member_series):
prometheus-client's own app would re-encode and re-compress hundreds of thousands of samples
at every scrape. A gzip stream may hold several members, so the answer is the scrape's own
small part compressed now followed by the block compressed when it was read."""

from __future__ import annotations

import gzip
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer, _get_best_family, choose_encoder, gzip_accepted

from ledger.metrics.ledger_state import LedgerMetrics


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - a scrape every few seconds: no line each
        pass


def make_app(metrics: LedgerMetrics):
    def app(environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"see /metrics\n"]
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
            return [b"GET or HEAD\n"]
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT"))
        headers = [("Content-Type", content_type)]
        if method == "HEAD":  # a liveness probe: the headers a GET would have, and no reading
            start_response("200 OK", headers)
            return []
        head, block, block_gzip, tail = metrics.exposition(encoder)
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING")):
            chunks = [gzip.compress(head, compresslevel=6)]
            if block_gzip:
                chunks.append(block_gzip)
            if tail:
                chunks.append(gzip.compress(tail))
            headers.append(("Content-Encoding", "gzip"))
        else:
            chunks = [head, block or b"", tail]
        headers.append(("Content-Length", str(sum(len(c) for c in chunks))))
        start_response("200 OK", headers)
        return chunks

    return app


def make_metrics_server(host: str, port: int, metrics: LedgerMetrics):
    """Bound, not yet serving (serve_forever in a thread; shutdown() to stop)."""

    class Server(ThreadingWSGIServer):
        pass

    Server.address_family, host = _get_best_family(host, port)
    return make_server(host, port, make_app(metrics), Server, handler_class=_QuietHandler)
