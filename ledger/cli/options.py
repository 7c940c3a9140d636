"""Option parsers shared by the commands: each names the option in its error."""

from __future__ import annotations

import datetime as dt

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
