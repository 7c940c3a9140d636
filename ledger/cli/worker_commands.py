"""`ledger worker` and `ledger beat`: the Celery processes."""

from __future__ import annotations

import click

from ledger.cli.main import load_settings


@click.command()
@click.option("--concurrency", "-c", default=4, show_default=True, type=click.IntRange(1, 64), help="Task threads.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--hostname", "-n", help="Node name (default: one per process, worker<pid>@<host>).")
def worker(concurrency: int, loglevel: str, hostname: str | None) -> None:
    """Run a Celery worker (threads: the engine and the Popbill client are shared)."""
    import os

    from ledger import logs

    logs.configure(load_settings(), default_level="INFO")
    from workers import app

    # RabbitMQ refuses a second worker of the same node name (its control queue is exclusive),
    # so two workers on one machine need distinct names.
    name = hostname or f"worker{os.getpid()}@%h"
    app.worker_main(["worker", "-P", "threads", "-c", str(concurrency), "-l", loglevel, "-n", name])


@click.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run Celery beat, the scheduler. Run one; a second is harmless (slots are claimed)."""
    from ledger import logs

    settings = load_settings()
    logs.configure(settings, default_level="INFO")
    from workers import app

    settings.ledger_home.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "-l", loglevel, "-s", str(settings.ledger_home / "celerybeat-schedule")])
