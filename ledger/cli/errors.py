"""Exit codes, and the one table that maps what a command raises to its exit code and line.

Commands raise domain errors and never print tracebacks for them: `friendly_errors` looks the
error up here, prints one line on stderr and exits with the code the table gives. Classes are
named by their import path, so this module (imported by every command) loads neither
SQLAlchemy nor the Popbill client.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import click

EXIT_OK = 0
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


class CommandFailed(click.ClickException):
    """A failure the command explains in its message: exit 1."""

    exit_code = EXIT_FAILURE


def _message(exc: BaseException) -> str:
    return str(exc)


def _popbill_message(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc)


def _database_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    reason = str(orig).strip().splitlines()[0] if orig and str(orig).strip() else "unreachable"
    return f"cannot use the database: {reason}"


def _schema_message(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    if orig is not None and "UndefinedTable" in type(orig).__name__:
        return "the database has no ledger tables yet: run `ledger db upgrade`"
    return None  # another programming error: a bug, shown as one


@dataclasses.dataclass(frozen=True)
class Outcome:
    exit_code: int
    line: Callable[[BaseException], str | None]  # None: not this table's to explain; the error goes through


# The most specific class of an error (its MRO walked from the class itself) decides.
ERROR_EXITS: dict[str, Outcome] = {
    # Bad input: nothing was done.
    "ledger.errors.UserInputError": Outcome(EXIT_USAGE, _message),
    "ledger.popbill.errors.InvalidRequestError": Outcome(EXIT_USAGE, _popbill_message),
    # A money request sent but not answered: it may have been registered, so not "bad input".
    "ledger.errors.OutcomeUnknownError": Outcome(EXIT_OUTCOME_UNKNOWN, _message),
    # Popbill refused a request, answered outside the documented shapes, or could not be reached.
    "ledger.popbill.errors.PopbillError": Outcome(EXIT_FAILURE, _message),
    "ledger.sandbox.service.SandboxError": Outcome(EXIT_FAILURE, _message),
    # The database: unreachable, or not migrated yet.
    "sqlalchemy.exc.OperationalError": Outcome(EXIT_FAILURE, _database_message),
    "sqlalchemy.exc.ProgrammingError": Outcome(EXIT_FAILURE, _schema_message),
}


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def outcome_of(exc: BaseException) -> Outcome | None:
    """The table's entry for this error, or None: an unexpected error keeps its traceback."""
    for cls in type(exc).__mro__:
        found = ERROR_EXITS.get(_class_path(cls))
        if found is not None:
            return found
    return None


def friendly_errors(fn):
    """Known failures become one clear line on stderr and the table's exit code, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (KeyboardInterrupt, click.exceptions.Abort):  # Ctrl-C, also at a prompt
            click.echo("interrupted", err=True)
            raise SystemExit(EXIT_INTERRUPTED) from None
        except click.ClickException:
            raise
        except Exception as exc:
            outcome = outcome_of(exc)
            line = outcome.line(exc) if outcome is not None else None
            if line is None:
                raise
            error = InputError(line) if outcome.exit_code == EXIT_USAGE else CommandFailed(line)
            error.exit_code = outcome.exit_code
            raise error from None

    return wrapper
