"""`ledger report statement` and `ledger export`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import click

from ledger.cli.main import friendly_errors, open_engine
from ledger.cli.options import iso_date, iso_month, output_file
from ledger.cli.output import print_table
from ledger.reports import export as exporting
from ledger.reports.statement import Statement, monthly_statement


def statement_rows(statement: Statement, lang: str) -> tuple[list[str], list[tuple]]:
    columns = ["corp_num", "month", "line", "amount"]
    rows = [(statement.corp_num, statement.month.strftime("%Y-%m"), line.label_ko if lang == "ko" else line.label_en,
             line.amount) for line in statement.lines]  # fmt: skip
    return columns, rows


def write(columns, rows, fmt: str, lang: str, out: Path | None, title: str) -> None:
    from ledger.reports.labels import header

    if fmt == "xlsx":
        if out is None:
            raise click.BadParameter("xlsx needs --out FILE", param_hint="--format")
        exporting.to_xlsx(columns, rows, lang, out, title)
        click.echo(f"wrote {len(rows)} rows to {out}")
        return
    if fmt == "table":
        print_table(
            title,  # amounts stay Decimal: the table right-aligns them with one number of decimals
            [{header(c, lang): v if isinstance(v, Decimal) else exporting.plain(v) for c, v in zip(columns, r, strict=True)}
             for r in rows],  # fmt: skip
        )
        return
    body = exporting.to_csv(columns, rows, lang) if fmt == "csv" else exporting.to_json(columns, rows)
    if out is None:
        click.echo(body, nl=False)
    else:
        out.write_text(body, encoding="utf-8-sig" if fmt == "csv" else "utf-8")  # a BOM: Excel then reads Korean
        click.echo(f"wrote {len(rows)} rows to {out}")


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
@click.option("--lang", type=click.Choice(["en", "ko"]), default="en", show_default=True, help="Labels and headers.")
@friendly_errors
def statement(corp_num: str, month: dt.date, fmt: str, out: Path | None, lang: str) -> None:
    """A member's monthly statement: opening, deposits, bonus, usage by service, refunds, closing."""
    from ledger.popbill import validation

    result = monthly_statement(open_engine(), validation.corp_num(corp_num, "statement"), month)
    columns, rows = statement_rows(result, lang)
    title = f"{result.corp_num} {result.member_name or ''} {result.month:%Y-%m}".replace("  ", " ")
    write(columns, rows, fmt, lang, out, title)
    if fmt == "table" and not result.balanced:
        click.echo("warning: opening + movements does not equal closing; run `ledger reconcile`", err=True)


@click.command("export")
@click.argument("name", metavar="TABLE_OR_VIEW")
@click.option("--from", "start", callback=iso_date, metavar="YYYY-MM-DD", help="First Korean day (inclusive).")
@click.option("--to", "end", callback=iso_date, metavar="YYYY-MM-DD", help="Last Korean day (inclusive).")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "json"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), callback=output_file, help="Write to FILE.")
@click.option("--lang", type=click.Choice(["en", "ko"]), default="en", show_default=True)
@friendly_errors
def export(name: str, start, end, fmt: str, out: Path | None, lang: str) -> None:
    """Export a ledger table or view (see docs/accountants.md for the list)."""
    if start and end and start > end:
        raise click.BadParameter("--from is after --to", param_hint="--from")
    columns, rows = exporting.fetch(open_engine(), name, start, end)
    write(columns, rows, fmt, lang, out, name)
