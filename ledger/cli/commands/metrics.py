"""`ledger metrics serve`: a Prometheus endpoint for the ledger's state."""

from __future__ import annotations

import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click

from ledger.cli.errors import friendly_errors
from ledger.cli.runtime import load_settings, open_engine
from ledger.metrics.ledger_state import render

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def make_server(host: str, port: int, scrape) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # scrapes every few seconds: not worth a line each
            pass

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "see /metrics")
                return
            body = scrape()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


@click.group()
def metrics() -> None:
    """Prometheus metrics."""


@metrics.command()
@click.option("--port", default=9464, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 to be scraped from other hosts.")
@friendly_errors
def serve(port: int, host: str) -> None:
    """Serve /metrics: balances, sync freshness, rows held, pending items, discrepancies, the
    outbox and alerts, all read from PostgreSQL at each scrape (LEDGER_METRICS_PER_MEMBER=false
    leaves out the per-member series)."""

    settings = load_settings()
    engine = open_engine(settings)
    try:
        server = make_server(host, port, lambda: render(engine, per_member=settings.metrics_per_member,
                                                        default_threshold=settings.alert_threshold))  # fmt: skip
    except OSError as exc:
        raise click.ClickException(f"--port: cannot listen on {host}:{port}: {exc.strerror}") from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    click.echo(f"serving metrics on http://{host}:{server.server_address[1]}/metrics", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    server.shutdown()
