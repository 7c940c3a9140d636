"""Tables and JSON for the terminal.

Tables fit 80 columns unless --wide (CorpNum is never cut), amounts are right-aligned with one
number of decimals per column, and times are Korean time to the second. JSON keeps full ISO
times with their offset, and amounts as exact decimal strings.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from collections.abc import Iterable
from decimal import Decimal

import click

from ledger.kst import KST

NARROW_WIDTH = 80
SHORT_TEXT = 11  # text up to this long is never folded ('interrupted', 'not started')
LONG_TEXT_MIN = 6  # longer text (errors, names) folds into what room is left
CORP_NUM_COLUMNS = {"corp_num", "subject", "CorpNum", "사업자번호"}


def _plain(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def json_text(row: dict) -> str:
    """One row as echo_json writes it, on one line (for output streamed row by row)."""
    return json.dumps({k: _plain(v) for k, v in row.items()}, ensure_ascii=False)


def echo_json(rows: list[dict]) -> None:
    click.echo(json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], ensure_ascii=False, indent=2))


class JsonLines:
    """`--json` for many rows: one array written a row at a time, a row a line, as each comes
    (from any thread); nothing is held but the row being written. A hundred thousand rows as one
    indented document held about 90 MB."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first = True

    def write(self, row: dict) -> None:
        text = json_text(row)
        with self._lock:
            sys.stdout.write(("[\n" if self._first else ",\n") + text)
            self._first = False

    def close(self) -> None:
        with self._lock:
            sys.stdout.write("[]\n" if self._first else "\n]\n")
            sys.stdout.flush()


def echo_json_lines(rows: Iterable[dict]) -> None:
    stream = JsonLines()
    for row in rows:
        stream.write(row)
    stream.close()


def echo_document(document: dict) -> None:
    """One JSON object (exact decimals as strings, ISO times)."""
    click.echo(json.dumps(document, ensure_ascii=False, indent=2, default=_plain))


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


def _shares(needs: dict[str, int], room: int) -> dict[str, int]:
    """The width of each column of long text: one that needs less than an equal share of the
    room gets what it needs, and the others share what is left (never below LONG_TEXT_MIN)."""
    shares, left = {}, dict(needs)
    while left:
        equal = room // len(left)
        fitting = {column: need for column, need in left.items() if need <= equal}
        if not fitting:
            shares.update({column: max(LONG_TEXT_MIN, equal) for column in left})
            break
        for column, need in fitting.items():
            shares[column] = need
            room -= need
            del left[column]
    return shares


def print_table(title: str, rows: list[dict], columns: list[str] | None = None, *, wide: bool = False) -> None:
    """A table of `columns` (all of the rows' keys if None). Fits 80 columns, folding long
    text, unless `wide`: then every column at its full width, whatever the terminal.
    CorpNums, amounts, times and short words are never cut; long text shares what is left."""
    # lazy: rich costs a tenth of a second of start-up, which `--json` and scripts never use
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table

    columns = columns or (list(rows[0]) if rows else [])
    terminal = Console()
    width = 10_000 if wide else (min(NARROW_WIDTH, terminal.width) if terminal.is_terminal else NARROW_WIDTH)
    cells, kept, numbers, has_times = {}, {}, set(), False
    for column in columns:
        values = [row.get(column) for row in rows]
        has_times = has_times or any(isinstance(v, dt.datetime) for v in values)
        decimals = _decimals(values)
        cells[column] = [_cell(v, decimals) for v in values]
        if _is_number(values):
            numbers.add(column)
        longest = max((cell_len(c) for c in [column, *cells[column]]), default=0)
        whole = column in CORP_NUM_COLUMNS or column in numbers or any(isinstance(v, dt.date) for v in values)
        if wide or whole or longest <= SHORT_TEXT:
            kept[column] = longest
    folding = {c: max(cell_len(x) for x in [c, *cells[c]]) for c in columns if c not in kept}
    room = width - (3 * len(columns) + 1) - sum(kept.values())  # borders and padding: 3 a column, plus 1
    shares = _shares(folding, room)
    table = Table(title=title)
    for column in columns:
        fixed = kept.get(column)
        table.add_column(
            column, justify="right" if column in numbers else "left", overflow="fold",
            no_wrap=fixed is not None, min_width=fixed, max_width=None if fixed is not None else shares[column],
        )  # fmt: skip
    for i in range(len(rows)):
        table.add_row(*[cells[c][i] for c in columns])
    if has_times:
        table.caption = "times in Korean time (KST)"
    Console(width=width).print(table, crop=not wide)
