"""Decoding answers: orjson where it is exact, and always the very values (and types) the
standard library with Decimal gives, for every kind of body an upstream may send."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest

from ledger import jsonutil

PAGE = (
    '{"code":1,"total":2,"perPage":1000,"pageNum":1,"pageCount":1,"list":['
    '{"itemCode":110,"txType":2,"txPoint":"10","balance":"16427.4","txDT":"20261120150000",'
    '"serviceUserID":"","userID":"user01","userName":"김하나"},'
    '{"itemCode":121,"txType":2,"txPoint":"-5","balance":"16422.4","txDT":"20261120150001",'
    '"serviceUserID":null,"userID":"api","userName":"API","extra":{"nested":[1,true,false,null,"x"]}}]}'
)
BODIES = [
    PAGE, '{"remainPoint":12345}', '{"remainPoint":12345.50}', '{"remainPoint":1e3}', '{"remainPoint":1E-2}',
    '{"remainPoint":-0}', '{"remainPoint":-0.0}', '{"total":123456789012345678901234567890}',
    '{"total":9223372036854775807}', '{"total":18446744073709551616}', '{"list":[{"txPoint":12.5}]}',
    '{"list":[{"a":{"b":[{"c":[0.1]}]}}]}', '{"list":[[[[1.5]]]]}', '{"remainPoint":NaN}',
    '{"remainPoint":Infinity}', '{"remainPoint":-Infinity}', '{"remainPoint":1e400}', '{"a":"tab\there"}',
    '{"a":"\\u0000"}', '{"a":"\\ud800"}', '{"a":"\\ud83d\\ude00"}', '{"a":1,"a":2.5}', "[1, 2.5]", "1.5", "7",
    '"text"', "null", " { \"a\" : 1 } ", '{"a":"\u00e9\u4e00"}',
]  # fmt: skip
NOT_JSON = [b"", b"{", b"\xef\xbb\xbf{}", b"{'a': 1}", b"{\"a\":01}", b"<html>", b"{\"a\":1}x"]


def _same(a, b) -> bool:
    """Equal, and of the same types all the way down (a float is not a Decimal); NaN is NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and str(a) == str(b)


def _stdlib(body: bytes):
    return json.loads(body.decode("utf-8", "replace"), parse_float=Decimal, strict=False)


@pytest.mark.parametrize("text", BODIES)
def test_the_values_the_standard_library_gives(text):
    for body in (text.encode(), text.encode("utf-8", "surrogatepass")):
        assert _same(jsonutil.loads(body), _stdlib(body)), body


def test_invalid_utf8_becomes_the_replacement_character():
    body = b'{"userName":"\xff\xfe\xc3"}'
    assert jsonutil.loads(body) == {"userName": "\ufffd\ufffd\ufffd"}


@pytest.mark.parametrize("body", NOT_JSON)
def test_not_json_is_a_value_error(body):
    with pytest.raises(ValueError):
        jsonutil.loads(body)


def test_no_amount_passes_through_a_float():
    page = jsonutil.loads(b'{"list":[{"txPoint":"0.1"},{"txPoint":0.1},{"txPoint":12345678901234567890123}]}')
    points = [row["txPoint"] for row in page["list"]]
    assert points == ["0.1", Decimal("0.1"), 12345678901234567890123]
    assert [type(p) for p in points] == [str, Decimal, int]
