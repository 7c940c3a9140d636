"""How results are shown on the terminal where more than one command shows them (the demo
shows a sync, a reconciliation and a statement as their own commands do). Below the commands;
imports nothing back from them."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import click

from ledger.cli.output import print_table
from ledger.reports import export as exporting
from ledger.reports.labels import header, status
from ledger.reports.layout import COUNT_KEYS
from ledger.reports.statement import Statement

STATEMENT_COLUMNS = ["corp_num", "month", "line", "amount", "won", "status"]


def _verdict(report, closing_applies: bool) -> str:
    if not report.reconciled:
        return "NO"
    return "yes" if report.closing_checked or not closing_applies else "partly"


def _closing(report, closing_applies: bool) -> str:
    return "checked" if report.closing_checked else "not run" if closing_applies else "n/a"


def print_reconciliation(reports, *, closing_applies: bool = True, wide: bool = False) -> None:
    """The table, and a line naming members whose closing balance could not be checked (no
    balance reading since their last sync): they are never shown as simply reconciled.
    A --date/--month reconcile has no closing check (closing_applies False)."""
    rows = [{"corp_num": r.corp_num, "reconciled": _verdict(r, closing_applies), "closing": _closing(r, closing_applies),
             "new": r.new, "resolved": r.resolved,
             "open": ", ".join(f"{check} {n}" for check, n in sorted(r.open_by_check.items()))
                     or (f"checks failed: {r.error}" if r.error else "-")}
            for r in reports]  # fmt: skip
    print_table("reconciliation", rows, wide=wide)
    unchecked = [r.corp_num for r in reports if not r.closing_checked] if closing_applies else []
    if unchecked:
        click.echo(
            f"closing balance check not run for {len(unchecked)} member(s) ({', '.join(unchecked[:5])}"
            f"{', ...' if len(unchecked) > 5 else ''}): no balance reading since their last usage sync. "
            "Run `ledger balances` after `ledger sync`, then reconcile again."
        )


def statement_rows(statement: Statement, lang: str) -> tuple[list[str], list[tuple]]:
    rows = [(statement.corp_num, statement.month.strftime("%Y-%m"), line.label_ko if lang == "ko" else line.label_en,
             int(line.amount) if line.key in COUNT_KEYS else line.amount, line.won, status(line.status, lang))
            for line in statement.lines]  # fmt: skip
    return STATEMENT_COLUMNS, rows


def write_rows(columns, rows, fmt: str, lang: str, out: Path | None, title: str, encoding: str = "utf-8") -> None:
    """Rows as a terminal table, or CSV/JSON/XLSX to --out or standard output."""
    if fmt == "xlsx" and out is None:
        raise click.BadParameter("xlsx needs --out FILE", param_hint="--format")
    if fmt == "table":
        print_table(
            title,  # amounts stay Decimal: the table right-aligns them with one number of decimals
            [{header(c, lang): v if isinstance(v, Decimal) else exporting.plain(v) for c, v in zip(columns, r, strict=True)}
             for r in rows],  # fmt: skip
        )
        return
    if out is None:
        exporting.write_stream(columns, rows, fmt, lang, sys.stdout.buffer, encoding)
        return
    count = exporting.write_file(columns, rows, fmt, lang, out, title, encoding)
    click.echo(f"wrote {count} rows to {out}", err=True)
