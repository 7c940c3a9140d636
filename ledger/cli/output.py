"""Tables and JSON for the terminal."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import click
from rich.console import Console
from rich.table import Table


def _plain(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def echo_json(rows: list[dict]) -> None:
    click.echo(json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], ensure_ascii=False, indent=2))


def print_table(title: str, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if rows and isinstance(rows[0].get(column), int | Decimal) else "left")
    for row in rows:
        table.add_row(*["" if row.get(c) is None else str(_plain(row.get(c))) for c in columns])
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped output: no truncated columns
    console.print(table)
