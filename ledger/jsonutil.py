"""JSON with exact decimals, both ways: amounts never pass through a float.

Decoding: orjson where it is exact, the standard library otherwise. orjson reads every number
with a fraction or an exponent, and every integer beyond 64 bits, as a float; Popbill sends
amounts as strings, so a page holds none of those and orjson's result is exact (and costs a
fifth of the standard library's). Anything orjson refuses or would make a float of (a bare
1.5, NaN, a lone surrogate, a raw control character, invalid UTF-8) is decoded again by the
standard library with Decimal for numbers, as it always was.

Encoding (for the database): orjson, because the raw row of every history entry is
serialised once on its way in, and the standard library's encoder costs ten times as much;
Decimals are written as decimal strings.
"""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import chain

import orjson

_EXACT = frozenset({str, int, bool, type(None)})  # what orjson decodes exactly


def _default(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(obj) -> str:
    return orjson.dumps(obj, default=_default).decode()


def _exact(value) -> bool:
    """No float anywhere in what orjson decoded; lists of objects are checked as one flat
    run of their values (C loops: a 1,000-row page costs about a tenth of a µs a row)."""
    if type(value) is float:
        return False
    pending = [value.values()] if type(value) is dict else [value] if type(value) is list else []
    while pending:
        values = pending.pop()
        kinds = set(map(type, values))
        if kinds <= _EXACT:
            continue
        if float in kinds:
            return False
        if dict in kinds:
            pending.append(list(chain.from_iterable(v.values() for v in values if type(v) is dict)))
        if list in kinds:
            pending.extend(v for v in values if type(v) is list)
    return True


def loads(body: bytes):
    """The JSON document in body with exact numbers: Decimal for any with a fraction or an
    exponent. ValueError if it is not JSON. Invalid UTF-8 becomes U+FFFD and raw control
    characters inside strings are taken as sent (the caller screens what they leave)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        if _exact(data):
            return data
    return json.loads(body.decode("utf-8", "replace"), parse_float=Decimal, strict=False)
