"""Option parsers shared by the commands: each names the option in its error."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click


def iso_date(ctx, param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"must be a date as YYYY-MM-DD, got {value!r}") from None


def iso_month(ctx, param, value: str | None) -> dt.date | None:
    """YYYY-MM, as the first day of that month."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(f"{value}-01")
    except ValueError:
        raise click.BadParameter(f"must be a month as YYYY-MM, got {value!r}") from None


def output_file(ctx, param, value):
    """--out FILE: its directory must exist and the path must not be a directory, checked
    before any work is done (not a traceback after it)."""
    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        raise click.BadParameter(f"{path} is a directory; give a file name", param=param)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise click.BadParameter(f"the directory {parent} does not exist (create it first)", param=param)
    if not os.access(parent, os.W_OK):
        raise click.BadParameter(f"cannot write into {parent}", param=param)
    return path


wide_option = click.option("--wide", is_flag=True, help="Every column at full width (tables fit 80 columns otherwise).")
