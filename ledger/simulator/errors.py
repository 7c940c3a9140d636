"""Popbill-style error answers of the simulator. Real codes are not published for every case;
these are the simulator's own, negative like Popbill's."""

from __future__ import annotations


class SimError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def auth_error(code: int, message: str) -> SimError:
    return SimError(401, code, message)


def bad_request(code: int, message: str) -> SimError:
    return SimError(400, code, message)


BAD_LINK_ID = -11000001
BAD_SIGNATURE = -11000002
STALE_DATE = -11000003
BAD_SERVICE_ID = -11000004
BAD_SCOPE = -11000005
BAD_ACCESS_ID = -11000006
BAD_TOKEN = -11000010
EXPIRED_TOKEN = -11000011
TOKEN_SERVICE_MISMATCH = -11000012
MEMBER_CLOSED = -11000013

UNKNOWN_SETTLE_CODE = -14000001
UNKNOWN_REFUND_CODE = -14000002
NOT_REFUNDABLE = -14000003
BAD_FORM = -14000004
BAD_DATE = -14000005
BAD_PAGING = -14000006
BAD_VERSION = -14000007
NOT_FOUND = -14000404
