"""One small hierarchy for everything the Popbill client raises.

Every error carries the Popbill code (negative, or None when the server never answered),
the message, the HTTP status (None before an answer) and the call's name.
"""

from __future__ import annotations

# The code the official SDKs use for errors they detect before calling.
CLIENT_SIDE_CODE = -99999999


class PopbillError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        call: str | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.call = call
        self.body = body

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.call:
            parts.append(f"call={self.call}")
        return " ".join(parts) if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code}, status={self.status}, call={self.call!r})"


class InvalidRequestError(PopbillError):
    """Rejected before anything was sent; `parameter` names the offending argument."""

    def __init__(self, parameter: str, message: str, *, call: str | None = None) -> None:
        super().__init__(f"{parameter}: {message}", code=CLIENT_SIDE_CODE, call=call)
        self.parameter = parameter

    def __str__(self) -> str:
        # Our own check: the SDKs' client-side code and the call name mean nothing to a user.
        return self.message


class TransportError(PopbillError):
    """No usable answer: connection refused or dropped, timeout, malformed or truncated body."""

    def __init__(self, message: str, *, sent: bool, **kwargs) -> None:
        super().__init__(message, **kwargs)
        # False only when the request provably never reached the server.
        self.sent = sent


class MalformedAnswerError(TransportError):
    """An answer that is not clearly one of the documented shapes: broken JSON, `{}`, a field
    missing or of the wrong type, NaN or Infinity, a number beyond the limits. Doubt, never a
    fact: nothing is concluded from it. `field` names what was wrong, when one thing was."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs) -> None:
        kwargs.setdefault("sent", True)
        super().__init__(message, **kwargs)
        self.field = field


class ReadTimeoutError(TransportError):
    pass


class DeadlineExceededError(ReadTimeoutError):
    """The call's overall deadline passed (a server trickling its answer never trips a read timeout)."""


class ResponseTooLargeError(TransportError):
    """The answer crossed the size limit on the wire or once decoded, and was not read further.
    Not retried: the same request would bring the same answer."""

    def __init__(self, message: str, *, received: int, decoded: int, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.received = received  # bytes read from the wire before stopping
        self.decoded = decoded  # bytes they decoded to


class AuthError(PopbillError):
    """Linkhub refused the credentials or the token (bad signature, expired, wrong member)."""


class RateLimitError(PopbillError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(PopbillError):
    """A 5xx answer that is not a Popbill business error."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class BusinessError(PopbillError):
    """Popbill understood the call and said no: the JSON answer with a negative code."""


class PagingError(PopbillError):
    """Pages disagreed with each other (total or pageCount changed, rows missing)."""


class ClockError(PopbillError):
    """The clock this client judges token expiry by disagrees with Linkhub's: a token arrived
    already expired (or about to). Not retried: the same clock gives the same answer."""


def describe(exc: BaseException, *, answer_chars: int = 160) -> str:
    """One line for an operator: which call, and what was wrong with what came back (with the
    start of the answer itself where one came: never a token's, whose body is not kept)."""
    if not isinstance(exc, PopbillError):
        return f"{type(exc).__name__}: {exc}"
    call = exc.call or "the call"
    if isinstance(exc, BusinessError) and exc.status == 200:
        text = f"{call} answered HTTP 200 with Popbill's error form: code {exc.code}, {exc.message!r}"
    elif isinstance(exc, BusinessError):
        text = f"{call} refused (HTTP {exc.status}): code {exc.code}, {exc.message!r}"
    elif isinstance(exc, MalformedAnswerError):
        text = exc.message if exc.message.startswith(call) else f"{call}: {exc.message}"
    elif isinstance(exc, TransportError):
        text = f"{call} got no usable answer: {exc.message}"
    else:
        text = f"{call} failed: {exc}"
    if isinstance(exc, MalformedAnswerError) and exc.body:
        shown = exc.body if len(exc.body) <= answer_chars else exc.body[: answer_chars - 3] + "..."
        text += f"; the answer was {shown}"
    return text
