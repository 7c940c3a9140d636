"""`ledger worker` and `ledger beat`: the Celery processes."""

from __future__ import annotations

import click

from ledger import logs
from ledger.cli.runtime import load_settings
from ledger.health.checks import DEFAULT_NODE
from ledger.worker.app import make_app


@click.command()
@click.option("--concurrency", "-c", default=4, show_default=True, type=click.IntRange(1, 64), help="Task threads.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--hostname", "-n", help="Node name (default: LEDGER_WORKER_NAME, or ledger@<host>).")
def worker(concurrency: int, loglevel: str, hostname: str | None) -> None:
    """Run a Celery worker (threads: the engine and the Popbill client are shared). Its node
    name stays the same across restarts (Flower shows one worker, `ledger healthcheck worker`
    asks it by name); a second worker on one machine needs its own (--hostname or
    LEDGER_WORKER_NAME): RabbitMQ refuses two of one name."""
    settings = load_settings()
    logs.configure(settings, default_level="INFO")
    app = make_app(settings)

    name = hostname or settings.worker_name or DEFAULT_NODE
    logs.route_celery_prints(settings)
    app.worker_main([*logs.celery_quiet(settings), "worker", "-P", "threads", "-c", str(concurrency), "-l", loglevel,
                     "-n", name])  # fmt: skip


@click.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run Celery beat, the scheduler. Run one; a second is harmless (slots are claimed)."""
    settings = load_settings()
    logs.configure(settings, default_level="INFO")
    app = make_app(settings)

    settings.ledger_home.mkdir(parents=True, exist_ok=True)
    app.start([*logs.celery_quiet(settings), "beat", "-l", loglevel, "-s",
               str(settings.ledger_home / "celerybeat-schedule")])  # fmt: skip
