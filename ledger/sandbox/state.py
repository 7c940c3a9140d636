"""Where a running sandbox writes what other commands need to find it: one JSON file."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from ledger.db.shell import public_url
from ledger.settings import SANDBOX_LINK_ID, SANDBOX_SECRET_KEY


def sandbox_home(ledger_home: Path) -> Path:
    return ledger_home / "sandbox"


def state_path(ledger_home: Path) -> Path:
    return sandbox_home(ledger_home) / "state.json"


@dataclasses.dataclass(frozen=True)
class SandboxState:
    pid: int  # the supervising `ledger sandbox serve` process
    database_url: str  # loopback TCP, with the sandbox's password (the file is its owner's alone)
    simulator_url: str
    db_port: int
    sim_port: int
    pgdata: str
    started_at: str

    @property
    def shown_url(self) -> str:
        """The database URL without its password, to print."""

        return public_url(self.database_url) if self.database_url else ""

    def environment(self) -> dict[str, str]:
        """What a shell needs for every command to use the sandbox (`ledger sandbox env`)."""
        return {
            "LEDGER_DATABASE_URL": self.database_url,
            "POPBILL_API_URL": self.simulator_url,
            "LINKHUB_AUTH_URL": self.simulator_url,
            "POPBILL_LINK_ID": SANDBOX_LINK_ID,
            "POPBILL_SECRET_KEY": SANDBOX_SECRET_KEY,
            "POPBILL_IS_TEST": "true",
            # The simulator's clock can be advanced: sign, and end sync windows, by its clock.
            "POPBILL_USE_LOCAL_TIME": "false",
        }


def write_state(ledger_home: Path, state: SandboxState) -> None:
    path = state_path(ledger_home)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    # Its URL carries the database password: readable by the sandbox's owner alone.
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps(dataclasses.asdict(state), indent=2))
    partial.replace(path)  # atomic: a reader never sees half a file


def _read(path: Path) -> SandboxState | None:
    try:
        return SandboxState(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def read_state(ledger_home: Path) -> SandboxState | None:
    return _read(state_path(ledger_home))


def previous_state(ledger_home: Path) -> SandboxState | None:
    """The last sandbox's, after it stopped: its ports are offered to the next one, so that
    connections saved in DBeaver or Excel keep working."""
    return _read(state_path(ledger_home).with_name("previous.json"))


def clear_state(ledger_home: Path) -> None:
    path = state_path(ledger_home)
    try:
        path.replace(path.with_name("previous.json"))
    except FileNotFoundError:
        pass


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_state(ledger_home: Path) -> SandboxState | None:
    """The state of a sandbox whose supervisor is alive, else None."""
    state = read_state(ledger_home)
    if state is None or not process_alive(state.pid):
        return None
    return state
