"""Client for Popbill's point-management API."""

from ledger.popbill.client import PopbillClient
from ledger.popbill.errors import (
    AuthError,
    BusinessError,
    DeadlineExceededError,
    InvalidRequestError,
    PagingError,
    PopbillError,
    RateLimitError,
    ReadTimeoutError,
    ResponseTooLargeError,
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
    "DeadlineExceededError",
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
    "ResponseTooLargeError",
    "ServerError",
    "TransportError",
    "UseHistory",
]
