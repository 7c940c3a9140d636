"""JSON for the database: Decimals stay exact (written as decimal strings, never floats).

orjson, because the raw row of every history entry is serialised once on its way in, and
the standard library's encoder costs ten times as much.
"""

from __future__ import annotations

from decimal import Decimal

import orjson


def _default(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(obj) -> str:
    return orjson.dumps(obj, default=_default).decode()
