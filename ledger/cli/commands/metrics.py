"""`ledger metrics serve`: a Prometheus endpoint for the ledger's state."""

from __future__ import annotations

import signal
import threading

import click

from ledger.cli.errors import friendly_errors
from ledger.cli.runtime import load_settings, open_engine
from ledger.metrics.ledger_state import LedgerMetrics
from ledger.metrics.server import make_metrics_server


@click.group()
def metrics() -> None:
    """Prometheus metrics."""


@metrics.command()
@click.option("--port", default=9464, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 to be scraped from other hosts.")
@friendly_errors
def serve(port: int, host: str) -> None:
    """Serve /metrics (OpenMetrics or text, gzip, HEAD): balances, sync freshness, rows held,
    pending items, discrepancies, the outbox and alerts, read from PostgreSQL (the per-member
    series at most every LEDGER_METRICS_REFRESH seconds; LEDGER_METRICS_PER_MEMBER=false leaves
    them out)."""
    settings = load_settings()
    state = LedgerMetrics(open_engine(settings), settings)
    try:
        server = make_metrics_server(host, port, state)
    except OSError as exc:
        raise click.ClickException(f"--port: cannot listen on {host}:{port}: {exc.strerror}") from None
    state.start()
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
