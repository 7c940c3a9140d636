"""`ledger report statement`, `ledger report month` and `ledger export`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ledger.cli.errors import friendly_errors
from ledger.cli.options import iso_date, iso_month, output_file
from ledger.cli.runtime import load_settings, open_engine
from ledger.cli.summaries import statement_rows, write_rows
from ledger.popbill import validation
from ledger.reports import export as exporting
from ledger.reports.statement import monthly_statement
from ledger.reports.workbook import month_workbook as build_month_workbook


def lang_option(fn):
    return click.option("--lang", type=click.Choice(["en", "ko"]), default=None,
                        help="Labels and headers [default: LEDGER_LANG, else en].")(fn)  # fmt: skip


def encoding_option(fn):
    return click.option("--encoding", type=click.Choice(list(exporting.ENCODINGS)), default="utf-8", show_default=True,
                        help="CSV encoding: UTF-8 with a BOM, or CP949 as Korean Excel's 'CSV (쉼표로 분리)'.")(fn)  # fmt: skip


@click.group()
def report() -> None:
    """Reports for accountants."""


@report.command()
@click.option("--member", "corp_num", required=True, metavar="CORPNUM")
@click.option("--month", required=True, callback=iso_month, metavar="YYYY-MM")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "xlsx", "json"]), default="table", show_default=True
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
    help="Write to FILE instead of the terminal.",
)  # fmt: skip
@lang_option
@encoding_option
@friendly_errors
def statement(corp_num: str, month: dt.date, fmt: str, out: Path | None, lang: str | None, encoding: str) -> None:
    """A member's monthly statement: opening, deposits (won and points), bonus, usage by service,
    refunds, closing; a closed month's frozen figures."""
    lang = lang or load_settings().lang
    result = monthly_statement(open_engine(), validation.corp_num(corp_num, "statement"), month)
    columns, rows = statement_rows(result, lang)
    title = f"{result.corp_num} {result.member_name or ''} {result.month:%Y-%m}".replace("  ", " ")
    write_rows(columns, rows, fmt, lang, out, title, encoding)
    if result.closed:
        click.echo(f"{result.month:%Y-%m} is closed ({result.closed.by}, {exporting.plain(result.closed.at)} KST): "
                   "these are its frozen figures", err=True)  # fmt: skip
    if not result.balanced:
        click.echo("warning: opening + movements does not equal closing; run `ledger reconcile`", err=True)


@report.command("month")
@click.option("--month", required=True, callback=iso_month, metavar="YYYY-MM")
@click.option("--member", "members", multiple=True, metavar="CORPNUM", help="Only this member (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["xlsx"]), default="xlsx", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), callback=output_file)
@lang_option
@friendly_errors
def month_workbook(month: dt.date, members: tuple[str, ...], fmt: str, out: Path, lang: str | None) -> None:
    """One workbook for the month: a summary sheet, a sheet per member, and charts."""
    summary = build_month_workbook(open_engine(), month, out, lang or load_settings().lang, corp_nums=list(members) or None)
    click.echo(f"wrote {out}: {summary.members} member sheet(s), {summary.charts} chart(s)", err=True)


@click.command("export")
@click.argument("name", metavar="TABLE_OR_VIEW")
@click.option("--from", "start", callback=iso_date, metavar="YYYY-MM-DD", help="First Korean day (inclusive).")
@click.option("--to", "end", callback=iso_date, metavar="YYYY-MM-DD", help="Last Korean day (inclusive).")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "json"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), callback=output_file, help="Write to FILE.")
@lang_option
@encoding_option
@friendly_errors
def export(name: str, start, end, fmt: str, out: Path | None, lang: str | None, encoding: str) -> None:
    """Export a ledger table or view (see docs/accountants.md for the list). Streams: any size
    fits in memory; an XLSX over 1,048,576 rows continues on further sheets."""
    if start and end and start > end:
        raise click.BadParameter("--from is after --to", param_hint="--from")
    if fmt == "xlsx" and out is None:
        raise click.BadParameter("xlsx needs --out FILE", param_hint="--format")
    lang = lang or load_settings().lang
    with exporting.rows_of(open_engine(), name, start, end) as (columns, rows):
        write_rows(columns, rows, fmt, lang, out, name, encoding)
