"""The `ledger` command. Each domain registers its own group here."""

from ledger.cli.main import cli

__all__ = ["cli"]
