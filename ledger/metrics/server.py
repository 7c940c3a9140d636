"""The endpoints on prometheus-client's own WSGI server: the format Prometheus asks for
(OpenMetrics or the text format, prometheus-client's negotiation), gzip when accepted, HEAD.

/metrics has the partner-wide figures and the sync figures the rules read: about a hundred
samples, whatever the number of members. /metrics/members has the per-member series (two or
three a member), scraped by a job of its own at a longer interval (deploy/prometheus): at
100,000 members Prometheus alone spends about a second taking in their 200,000 samples, which
must not slow the scrape the alerts depend on. Those lines are rendered and gzipped once per
reading (member_series), never per scrape."""

from __future__ import annotations

import gzip
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer, _get_best_family, choose_encoder, gzip_accepted

from ledger.metrics.ledger_state import LedgerMetrics

PATHS = ("/metrics", "/metrics/members")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - a scrape every few seconds: no line each
        pass


def make_app(metrics: LedgerMetrics):
    def app(environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if path not in PATHS:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"see /metrics and /metrics/members\n"]
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
            return [b"GET or HEAD\n"]
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT"))
        headers = [("Content-Type", content_type)]
        if method == "HEAD":  # a liveness probe: the headers a GET would have, and no reading
            start_response("200 OK", headers)
            return []
        gzipped = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING"))
        if path == "/metrics":
            body = metrics.partner_wide(encoder)
            chunks = [gzip.compress(body, compresslevel=6) if gzipped else body]
        else:
            lines, lines_gzip, tail = metrics.per_member(openmetrics=content_type.startswith("application/openmetrics"))
            # Several gzip members make one stream: the lines as compressed when read, then the tail.
            chunks = [lines_gzip, gzip.compress(tail)] if gzipped else [lines, tail]
            chunks = [c for c in chunks if c]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
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
