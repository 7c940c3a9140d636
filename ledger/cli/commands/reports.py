"""`ledger report statement`, `ledger report month` and `ledger export`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ledger.cli.errors import friendly_errors
from ledger.cli.options import iso_date, iso_month, output_file
from ledger.cli.output import echo_document
from ledger.cli.runtime import load_settings, open_engine
from ledger.cli.summaries import statement_rows, write_rows
from ledger.popbill import validation
from ledger.reports import export as exporting
from ledger.reports.files import write_statement
from ledger.reports.statement import monthly_statement
from ledger.reports.workbook import month_pack
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
    "--format", "fmt", type=click.Choice(["table", "csv", "xlsx", "pdf", "json"]), default="table", show_default=True,
    help="xlsx and pdf are laid out for people (title block, print setup); csv and json for programs.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
    help="Write to FILE instead of the terminal.",
)  # fmt: skip
@lang_option
@encoding_option
@friendly_errors
def statement(corp_num: str, month: dt.date, fmt: str, out: Path | None, lang: str | None, encoding: str) -> None:
    """A member's monthly statement (거래명세서): opening, deposits (won and points), bonus, usage
    by service, refunds, adjustments, closing; a closed month's frozen figures."""
    settings = load_settings()
    lang = lang or settings.lang
    corp_num = validation.corp_num(corp_num, "statement")
    if fmt in ("xlsx", "pdf"):
        if out is None:
            raise click.BadParameter(f"{fmt} needs --out FILE", param_hint="--format")
        result = write_statement(open_engine(settings), corp_num, month, fmt, out, lang, font=settings.pdf_font)
        click.echo(f"wrote {out}", err=True)
    else:
        result = monthly_statement(open_engine(settings), corp_num, month)
        columns, rows = statement_rows(result, lang)
        title = f"{result.corp_num} {result.member_name or ''} {result.month:%Y-%m}".replace("  ", " ")
        write_rows(columns, rows, fmt, lang, out, title, encoding)
    if result.closed:
        click.echo(f"{result.month:%Y-%m} is closed ({result.closed.by}, {exporting.plain(result.closed.at)} KST): "
                   "these are its frozen figures", err=True)  # fmt: skip
    if not result.balanced:
        click.echo(f"warning: opening + movements does not equal closing (off by {result.difference:+}); "
                   "run `ledger reconcile`", err=True)  # fmt: skip


@report.command("month")
@click.option("--month", required=True, callback=iso_month, metavar="YYYY-MM")
@click.option("--member", "members", multiple=True, metavar="CORPNUM",
              help="Only this member (repeatable); it gets a statement sheet.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["xlsx", "pdf"]), default="xlsx", show_default=True,
              help="xlsx: the workbook; pdf: a zip of one PDF statement per member plus the workbook.")  # fmt: skip
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), callback=output_file)
@click.option("--largest", default=5, show_default=True, type=click.IntRange(0, 1000),
              help="Flag this many of the month's largest users.")  # fmt: skip
@click.option("--sheets", "sheet_limit", default=100, show_default=True, type=click.IntRange(0, 10000),
              help="At most this many member sheets (asked members first, then flagged ones).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print what was written, every flagged member, as JSON.")
@lang_option
@friendly_errors
def month_workbook(month: dt.date, members: tuple[str, ...], fmt: str, out: Path, largest: int, sheet_limit: int,
                   as_json: bool, lang: str | None) -> None:  # fmt: skip
    """The month for the accountant: a summary sheet (one row per member, every movement, a
    check column), the flagged members and why, and a statement sheet with charts for each
    member asked for or flagged (open discrepancies, closing below threshold, largest users).
    `--format pdf` writes a zip: one PDF statement per member, plus that workbook."""
    settings = load_settings()
    corp_nums = [validation.corp_num(c, "member") for c in members] or None
    options = {"corp_nums": corp_nums, "default_threshold": settings.alert_threshold, "largest": largest,
               "sheet_limit": sheet_limit}  # fmt: skip
    lang = lang or settings.lang
    if fmt == "pdf":
        result = month_pack(open_engine(settings), month, out, lang, font=settings.pdf_font, **options)
    else:
        result = build_month_workbook(open_engine(settings), month, out, lang, **options)
    if as_json:
        echo_document({"path": str(out), "month": f"{month:%Y-%m}", "members": result.members, "sheets": result.sheets,
                   "charts": result.charts, "statements": result.statements, "without_rows": result.without_rows,
                   "sheet_limit_reached": result.sheet_limit_reached,
                   "flagged": [{"corp_num": f.corp_num, "name": f.name, "reasons": list(f.reasons), "sheet": f.sheet}
                               for f in result.flagged]})  # fmt: skip
        return
    click.echo(month_summary_line(result, fmt), err=True)


def month_summary_line(result, fmt: str) -> str:
    """Counts, and a few names at most (--json lists every one)."""
    flagged = [f for f in result.flagged if f.reasons]
    named = ", ".join(f.corp_num for f in flagged[:3]) + (f" and {len(flagged) - 3} more" if len(flagged) > 3 else "")
    parts = [f"wrote {result.path}: {result.members:,} member(s) in the summary"]
    if fmt == "pdf":
        parts.append(f"{result.statements:,} PDF statement(s)")
    parts.append(f"{result.sheets:,} member sheet(s) with {result.charts:,} chart(s)")
    parts.append(f"{len(flagged):,} flagged" + (f" ({named})" if flagged else ""))
    line = "; ".join(parts)
    if result.sheet_limit_reached:
        line += "; the sheet limit was reached (raise it with --sheets; --json lists every flagged member)"
    return line


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
