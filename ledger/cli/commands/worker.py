"""`ledger worker` and `ledger beat`: the Celery processes."""

from __future__ import annotations

import os

import click

from ledger import logs
from ledger.cli.runtime import load_settings
from ledger.worker.app import make_app


@click.command()
@click.option("--concurrency", "-c", default=4, show_default=True, type=click.IntRange(1, 64), help="Task threads.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--hostname", "-n", help="Node name (default: one per process, worker<pid>@<host>).")
def worker(concurrency: int, loglevel: str, hostname: str | None) -> None:
    """Run a Celery worker (threads: the engine and the Popbill client are shared)."""
    settings = load_settings()
    logs.configure(settings, default_level="INFO")
    app = make_app(settings)

    # RabbitMQ refuses a second worker of the same node name (its control queue is exclusive),
    # so two workers on one machine need distinct names.
    name = hostname or f"worker{os.getpid()}@%h"
    app.worker_main(["worker", "-P", "threads", "-c", str(concurrency), "-l", loglevel, "-n", name])


@click.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run Celery beat, the scheduler. Run one; a second is harmless (slots are claimed)."""
    settings = load_settings()
    logs.configure(settings, default_level="INFO")
    app = make_app(settings)

    settings.ledger_home.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "-l", loglevel, "-s", str(settings.ledger_home / "celerybeat-schedule")])
