"""The one table of errors and exit codes, walked: every row with an error of its type raised
inside a command gives its exit code and one line, and `ledger --help` documents each code."""

from __future__ import annotations

import click
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy.exc import OperationalError, ProgrammingError

from ledger.cli.errors import ERROR_EXITS, EXIT_CODES_HELP, EXIT_OUTCOME_UNKNOWN, EXIT_USAGE, friendly_errors
from ledger.errors import OutcomeUnknownError, UserInputError
from ledger.pending.sending import OutcomeUnknown, RequestRefused
from ledger.popbill.errors import BusinessError, InvalidRequestError, MalformedAnswerError, PopbillError
from ledger.sandbox.service import SandboxError

# One error of each row's type in the table (and of subclasses that must land on their parent's row).
EXAMPLES = {
    InvalidRequestError: InvalidRequestError("CorpNum", "must be 10 digits, got '12'", call="GetBalance"),
    UserInputError: RequestRefused("not sent: an identical PaymentRequest for 1234567890 ..."),
    OutcomeUnknownError: OutcomeUnknown("PaymentRequest for 1234567890 (10 won) MAY HAVE BEEN REGISTERED: ..."),
    PopbillError: MalformedAnswerError("GetBalance answered outside the documented shape: remainPoint: 'NaN'"),
    SandboxError: SandboxError("the sandbox is not running: start it with `ledger sandbox up`"),
    ProgrammingError: ProgrammingError("SELECT 1 FROM members", {}, psycopg.errors.UndefinedTable("no members")),
    OperationalError: OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused\nmore")),
}


def _path(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def error_exit_codes() -> list[tuple[type, int]]:
    """The table's rows as (the type the row names, its exit code)."""
    by_path = {_path(kind): kind for kind in EXAMPLES}
    return [(by_path[path], outcome.exit_code) for path, outcome in ERROR_EXITS.items()]


def invoke(error: BaseException):
    @click.command()
    @friendly_errors
    def command() -> None:
        raise error

    return CliRunner().invoke(command, [])


def test_the_table_is_walked_whole():
    assert set(ERROR_EXITS) == {_path(kind) for kind in EXAMPLES}


@pytest.mark.parametrize("row", error_exit_codes(), ids=lambda row: row[0].__name__)
def test_each_row_exits_with_its_code_and_one_line(row):
    kind, code = row
    result = invoke(EXAMPLES[kind])
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    assert f"\n  {code} " in EXIT_CODES_HELP  # documented in `ledger --help`


def test_an_unknown_outcome_is_never_bad_input():
    result = invoke(EXAMPLES[OutcomeUnknownError])
    assert result.exit_code == EXIT_OUTCOME_UNKNOWN != EXIT_USAGE
    assert "MAY HAVE BEEN REGISTERED" in result.output


def test_a_refusal_keeps_popbills_code_and_message():
    result = invoke(BusinessError("입금자명이 올바르지 않습니다.", code=-14000004, status=200, call="PaymentRequest"))
    assert result.exit_code == 1 and "입금자명이 올바르지 않습니다." in result.output and "-14000004" in result.output


def test_a_programming_error_that_is_not_a_missing_table_stays_a_bug():
    bug = ProgrammingError("SELECT nonsense", {}, psycopg.errors.SyntaxError("syntax error"))
    result = invoke(bug)
    assert result.exit_code == 1 and isinstance(result.exception, ProgrammingError)


def test_an_unexpected_error_keeps_its_traceback():
    result = invoke(RuntimeError("not the table's"))
    assert isinstance(result.exception, RuntimeError)
