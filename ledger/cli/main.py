from __future__ import annotations

import functools
import sys

import click

from ledger import __version__
from ledger.popbill.errors import PopbillError
from ledger.settings import Settings, SettingsError


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def friendly_errors(fn):
    """Known failures become one clear line on stderr and a non-zero exit, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (PopbillError, SettingsError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ledger")
def cli() -> None:
    """ledger: your Popbill members' point ledger, in your own PostgreSQL."""


def _register() -> None:
    from ledger.cli import popbill_commands, simulator_commands

    cli.add_command(popbill_commands.popbill)
    cli.add_command(simulator_commands.simulator)


_register()


def main() -> None:  # pragma: no cover - console script entry
    sys.exit(cli())
