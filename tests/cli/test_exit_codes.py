"""The one table of errors and exit codes, walked: every row with an error of its type raised
inside a command gives its exit code and one line, and `ledger --help` documents each code."""

from __future__ import annotations

import click
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy.exc import OperationalError, ProgrammingError

from ledger.cli.main import EXIT_CODES_HELP, EXIT_OUTCOME_UNKNOWN, EXIT_USAGE, error_exit_codes, friendly_errors
from ledger.errors import OutcomeUnknownError, UserInputError
from ledger.pending.sending import OutcomeUnknown, RequestRefused
from ledger.popbill.errors import BusinessError, InvalidRequestError, MalformedAnswerError, PopbillError

# One error of each type in the table (and of subclasses that must land on their parent's row).
EXAMPLES = {
    InvalidRequestError: InvalidRequestError("CorpNum", "must be 10 digits, got '12'", call="GetBalance"),
    UserInputError: RequestRefused("not sent: an identical PaymentRequest for 1234567890 ..."),
    OutcomeUnknownError: OutcomeUnknown("PaymentRequest for 1234567890 (10 won) MAY HAVE BEEN REGISTERED: ..."),
    PopbillError: MalformedAnswerError("GetBalance answered outside the documented shape: remainPoint: 'NaN'"),
    ProgrammingError: ProgrammingError("SELECT 1 FROM members", {}, psycopg.errors.UndefinedTable("no members")),
    OperationalError: OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused\nmore")),
}


def invoke(error: BaseException):
    @click.command()
    @friendly_errors
    def command() -> None:
        raise error

    return CliRunner().invoke(command, [])


def test_the_table_is_walked_whole():
    assert {kind for kind, _, _ in error_exit_codes()} == set(EXAMPLES)


@pytest.mark.parametrize("row", error_exit_codes(), ids=lambda row: row[0].__name__)
def test_each_row_exits_with_its_code_and_one_line(row):
    kind, code, _ = row
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
