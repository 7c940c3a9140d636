"""The one base of errors caused by what a user typed or configured. The CLI prints their
message (which names the field, line or parameter) and exits non-zero, with no traceback."""

from __future__ import annotations


class UserInputError(ValueError):
    pass
