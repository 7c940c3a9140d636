"""Client for Popbill's point-management API."""

from ledger.popbill.client import PopbillClient
from ledger.popbill.errors import (
    AuthError,
    BusinessError,
    InvalidRequestError,
    PagingError,
    PopbillError,
    RateLimitError,
    ReadTimeoutError,
    ServerError,
    TransportError,
)
from ledger.popbill.models import (
    ChargeInfo,
    Page,
    PaymentForm,
    PaymentHistory,
    PaymentResponse,
    RefundForm,
    RefundHistory,
    RefundResponse,
    UseHistory,
)

__all__ = [
    "AuthError",
    "BusinessError",
    "ChargeInfo",
    "InvalidRequestError",
    "Page",
    "PagingError",
    "PaymentForm",
    "PaymentHistory",
    "PaymentResponse",
    "PopbillClient",
    "PopbillError",
    "RateLimitError",
    "ReadTimeoutError",
    "RefundForm",
    "RefundHistory",
    "RefundResponse",
    "ServerError",
    "TransportError",
    "UseHistory",
]
