"""`column IN (values)` for lists of any length."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY


def among(column, values: Iterable) -> ColumnElement[bool]:
    """`column = ANY(:array)`: one parameter however many values. An IN list sends one per
    value, and PostgreSQL takes at most 65,535, fewer than a large partner's members."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
