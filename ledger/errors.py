"""The one base of errors caused by what a user typed or configured. The CLI prints their
message (which names the field, line or parameter) and exits non-zero, with no traceback."""

from __future__ import annotations


class UserInputError(ValueError):
    pass


class OutcomeUnknownError(Exception):
    """Something may or may not have happened (a money request whose answer was lost): neither
    bad input nor a plain failure. The message says what happened, and what not to do."""
