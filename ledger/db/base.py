"""The one declarative base and metadata every domain's models share."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, MetaData, Numeric, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Points and money: NUMERIC with no fixed scale, so nothing is ever rounded.
Points = Numeric(asdecimal=True)
Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {Decimal: Points, dt.datetime: Timestamp, dict: JSONB}


def one_of(column: str, values: tuple, name: str) -> CheckConstraint:
    """A CHECK that `column` holds one of `values`: the same tuple the code and the metrics import."""
    listed = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


def created_at_column() -> Mapped[dt.datetime]:
    return mapped_column(Timestamp, server_default=func.now(), nullable=False)
