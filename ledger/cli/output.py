"""Tables and JSON for the terminal.

Tables fit 80 columns unless --wide (CorpNum is never cut), amounts are right-aligned with one
number of decimals per column, and times are Korean time to the second. JSON keeps full ISO
times with their offset, and amounts as exact decimal strings.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import click
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from ledger.kst import KST

NARROW_WIDTH = 80
SHORT_TEXT = 11  # text up to this long is never folded ('interrupted', 'not started')
CORP_NUM_COLUMNS = {"corp_num", "subject", "CorpNum", "사업자번호"}


def _plain(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def echo_json(rows: list[dict]) -> None:
    click.echo(json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], ensure_ascii=False, indent=2))


def kst_time(value: dt.datetime) -> str:
    """A moment as Korean time to the second: 2026-11-26 09:30:12."""
    if value.tzinfo is not None:
        value = value.astimezone(KST)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _decimals(values) -> int:
    """The most decimals any amount of the column has (so none is ever rounded)."""
    places = [max(0, -v.normalize().as_tuple().exponent) for v in values if isinstance(v, Decimal) and v.is_finite()]
    return max(places, default=0)


def _cell(value, decimals: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:,.{decimals}f}" if value.is_finite() else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dt.datetime):
        return kst_time(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _is_number(values) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in present)


def print_table(title: str, rows: list[dict], columns: list[str] | None = None, *, wide: bool = False) -> None:
    """A table of `columns` (all of the rows' keys if None). Fits 80 columns, wrapping long
    text, unless `wide`: then every column at its full width, whatever the terminal."""
    columns = columns or (list(rows[0]) if rows else [])
    table = Table(title=title)
    has_times = False
    cells_by_column = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        has_times = has_times or any(isinstance(v, dt.datetime) for v in values)
        number = _is_number(values)
        decimals = _decimals(values)
        cells_by_column[column] = [_cell(v, decimals) for v in values]
        longest = max((cell_len(c) for c in cells_by_column[column]), default=0)
        never_cut = column in CORP_NUM_COLUMNS or number
        # Short words (statuses, kinds) keep their width; long text folds onto more lines.
        table.add_column(
            column, justify="right" if number else "left", no_wrap=never_cut or wide, overflow="fold",
            min_width=longest if never_cut else min(longest, SHORT_TEXT),
        )  # fmt: skip
    for i in range(len(rows)):
        table.add_row(*[cells_by_column[c][i] for c in columns])
    if has_times:
        table.caption = "times in Korean time (KST)"
    terminal = Console()
    narrow = min(NARROW_WIDTH, terminal.width) if terminal.is_terminal else NARROW_WIDTH
    console = Console(width=10_000 if wide else narrow)
    if wide:
        console.print(table, crop=False)
    else:
        console.print(table)
