"""JSON for the database: Decimals stay exact (written as decimal strings, never floats)."""

from __future__ import annotations

import json
from decimal import Decimal


def _default(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_default)
