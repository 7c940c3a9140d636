from __future__ import annotations

import functools
import signal
import sys

import click

from ledger import __version__
from ledger.errors import OutcomeUnknownError, UserInputError
from ledger.popbill.errors import InvalidRequestError, PopbillError
from ledger.settings import Settings, SettingsError

# One convention for every command (documented in `ledger --help`).
EXIT_FAILURE = 1  # something failed: Popbill, the database, a channel, a sync
EXIT_USAGE = 2  # bad input: an option, an argument, a file, a setting; nothing was done
EXIT_DISCREPANCIES = 3  # reconciliation found open discrepancies
EXIT_OUTCOME_UNKNOWN = 4  # a money request may have been registered: do not send it again
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM

EXIT_CODES_HELP = """\b
Exit codes:
  0    done
  1    a failure (Popbill, the database, a sync, a channel)
  2    bad input (option, argument, file, setting); nothing was done
  3    reconciliation found open discrepancies
  4    a deposit or refund request's outcome is unknown: it may have been
       registered; do not send it again (`ledger pending poll` finds out)
  130  interrupted (Ctrl-C, SIGTERM)"""


class InputError(click.ClickException):
    """Bad input, named in the message: exit 2, like click's own usage errors."""

    exit_code = EXIT_USAGE


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise InputError(str(exc)) from None


def _database_reason(exc) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"


def _undefined_table(exc) -> str | None:
    if "UndefinedTable" in type(exc.orig).__name__:
        return "the database has no ledger tables yet: run `ledger db upgrade`"
    return None  # another programming error: a bug, shown as one


def error_exit_codes() -> tuple:
    """Every failure a command may end with, most specific first: (error type, exit code, the
    one line shown, or None to let it through as the bug it is). The one table the CLI maps
    errors by (tests/cli/test_exit_codes.py walks it)."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    return (
        (InvalidRequestError, EXIT_USAGE, lambda exc: exc.message),  # our own check, nothing sent: no Popbill code
        (UserInputError, EXIT_USAGE, str),
        (OutcomeUnknownError, EXIT_OUTCOME_UNKNOWN, str),
        (PopbillError, EXIT_FAILURE, str),
        (ProgrammingError, EXIT_FAILURE, _undefined_table),
        (OperationalError, EXIT_FAILURE, lambda exc: f"cannot use the database: {_database_reason(exc)}"),
    )


def friendly_errors(fn):
    """Known failures become one clear line on stderr and their exit code, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (KeyboardInterrupt, click.exceptions.Abort):  # Ctrl-C, also at a prompt
            click.echo("interrupted", err=True)
            raise SystemExit(EXIT_INTERRUPTED) from None
        except (click.ClickException, click.exceptions.Exit):
            raise
        except Exception as exc:
            for kind, code, say in error_exit_codes():
                if isinstance(exc, kind):
                    line = say(exc)
                    if line is None:
                        raise
                    failure = click.ClickException(line)
                    failure.exit_code = code
                    raise failure from None
            raise

    return wrapper


# Commands that report on a bad configuration themselves instead of refusing to start.
_SETTINGS_CHECKED_BY_COMMAND = {"doctor"}


class _Root(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept so the root can tell `ledger members list --help` (always answered) from a run.
        ctx.meta["ledger.argv"] = list(args)
        return super().parse_args(ctx, args)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="ledger")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ledger: your Popbill members' point ledger, in your own PostgreSQL."""
    from ledger import logs

    asking_for_help = bool({"--help", "-h"} & set(ctx.meta.get("ledger.argv", ())))
    if ctx.invoked_subcommand not in _SETTINGS_CHECKED_BY_COMMAND and not asking_for_help:
        logs.configure(load_settings())  # a bad variable stops every command here, with one line naming it
        return
    try:
        logs.configure(Settings.from_env())
    except SettingsError:
        logs.configure(Settings())  # the command itself reports the bad variable


def open_engine(settings: Settings | None = None):
    from ledger.db.engine import make_engine

    try:
        return make_engine(settings or load_settings())
    except SettingsError as exc:
        raise InputError(str(exc)) from None


def _register() -> None:
    from ledger.alerts import cli as alerts_cli
    from ledger.cli import db_commands, demo_command, popbill_commands, simulator_commands, worker_commands
    from ledger.cli.examples import add_examples
    from ledger.closing import cli as closing_cli
    from ledger.doctor import cli as doctor_cli
    from ledger.health import cli as health_cli
    from ledger.members import cli as members_cli
    from ledger.metrics import cli as metrics_cli
    from ledger.pending import cli as pending_cli
    from ledger.reconcile import cli as reconcile_cli
    from ledger.reports import cli as reports_cli
    from ledger.sandbox import cli as sandbox_cli
    from ledger.sync import cli as sync_cli

    cli.add_command(db_commands.db)
    cli.add_command(members_cli.members)
    cli.add_command(sync_cli.sync)
    cli.add_command(sync_cli.status)
    cli.add_command(pending_cli.payment)
    cli.add_command(pending_cli.refund)
    cli.add_command(pending_cli.track)
    cli.add_command(pending_cli.pending)
    cli.add_command(alerts_cli.balances)
    cli.add_command(alerts_cli.alerts)
    cli.add_command(reconcile_cli.reconcile)
    cli.add_command(reports_cli.report)
    cli.add_command(reports_cli.export)
    cli.add_command(closing_cli.close)
    cli.add_command(closing_cli.reopen)
    cli.add_command(closing_cli.closes)
    cli.add_command(worker_commands.worker)
    cli.add_command(worker_commands.beat)
    cli.add_command(demo_command.demo)
    cli.add_command(popbill_commands.popbill)
    cli.add_command(simulator_commands.simulator)
    cli.add_command(sandbox_cli.sandbox)
    cli.add_command(doctor_cli.doctor)
    cli.add_command(metrics_cli.metrics)
    cli.add_command(health_cli.healthcheck)
    add_examples(cli)


_register()


def main() -> None:  # pragma: no cover - console script entry
    # SIGTERM is an interrupt like Ctrl-C: commands stop the same way and exit 130.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(cli())
