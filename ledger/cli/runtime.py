"""What a command needs before it works: the settings, an engine on the ledger database, a Popbill client.

Below every command module; imports nothing back from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.cli.errors import InputError
from ledger.settings import Settings, SettingsError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledger.popbill import PopbillClient


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise InputError(str(exc)) from None


def open_engine(settings: Settings | None = None) -> Engine:
    # lazy: SQLAlchemy costs a third of a second; commands that never touch the database skip it.
    from ledger.db.engine import make_engine

    try:
        return make_engine(settings or load_settings())
    except SettingsError as exc:
        raise InputError(str(exc)) from None


def open_client(settings: Settings) -> PopbillClient:
    """A Popbill client, once its credentials are known to be meant for the hosts they would go
    to: a configuration Popbill must never see stops the command here, in one line (exit 2),
    rather than failing every member and history the same way."""
    # lazy: as above, the HTTP stack is for the commands that call Popbill
    from ledger.popbill import PopbillClient
    from ledger.popbill.requestor import refuse_sandbox_credentials_on_real_hosts

    refuse_sandbox_credentials_on_real_hosts(settings)
    return PopbillClient(settings)
