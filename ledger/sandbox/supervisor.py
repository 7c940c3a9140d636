"""The process `ledger sandbox up` leaves behind: it keeps PostgreSQL and the simulator up until
SIGTERM (`ledger sandbox down`), then stops both."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
from pathlib import Path

from ledger.sandbox import postgres
from ledger.sandbox.state import SandboxState, clear_state, read_state, sandbox_home, write_state
from ledger.simulator import SimConfig, Simulator

log = logging.getLogger(__name__)


def serve(ledger_home: Path, *, db_port: int, sim_port: int, seed: int, days: int, usage_per_day: float) -> None:

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())

    home = sandbox_home(ledger_home)
    pgdata = home / "pgdata"
    db_port = postgres.free_port(db_port)
    secret = postgres.password(home)
    postgres.start(pgdata, db_port, secret)
    try:
        postgres.ensure_database(db_port, secret)
        simulator = Simulator(SimConfig(seed=seed, history_days=days, usage_per_day=usage_per_day), port=sim_port)
        simulator.start()
        try:
            write_state(
                ledger_home,
                SandboxState(
                    pid=os.getpid(),
                    database_url=postgres.tcp_url(db_port, secret),
                    simulator_url=simulator.url,
                    db_port=db_port,
                    sim_port=simulator.port,
                    pgdata=str(pgdata),
                    started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                ),
            )
            log.info("sandbox up: database on %d, simulator on %s", db_port, simulator.url)
            while not stop.wait(1.0):  # wakes for signals on every platform
                pass
        finally:
            simulator.stop()
    finally:
        state = read_state(ledger_home)
        if state is not None and state.pid == os.getpid():
            clear_state(ledger_home)
        postgres.stop(pgdata)
        log.info("sandbox down")
