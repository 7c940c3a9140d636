"""Deposit and refund requests that never lose track of money.

PaymentRequest and Refund are not idempotent: a request whose answer was lost may still have
been registered, and sending it again would ask for the money twice. So an intent row is
committed before the POST and carries what identifies the request in the member's history
(amount, settler or account holder, time). When the answer is lost the row stays `unknown`,
the caller is told not to repeat the request, and the poller (`matching.py`) settles the
question from the history. A request identical to one still unknown is refused unless forced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from decimal import Decimal

import orjson
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ledger.db.transient import is_transient, retry_transient
from ledger.members.models import Member
from ledger.pending.models import PENDING, REFUSED, SENDING, UNKNOWN, TrackedItem
from ledger.pending.service import PendingError
from ledger.popbill import PaymentForm, PopbillClient, RefundForm
from ledger.popbill import validation as check
from ledger.popbill.errors import (
    AuthError,
    BusinessError,
    InvalidRequestError,
    PopbillError,
    RateLimitError,
    TransportError,
)

log = logging.getLogger(__name__)


class RequestRefused(PendingError):
    """Not sent: bad input, or an identical request's outcome is still unknown."""


class OutcomeUnknown(PendingError):
    """The request may have been registered; the message says so and what not to do."""


def form_digest(kind: str, form: PaymentForm | RefundForm) -> str:
    """What makes two requests identical: every field of the form, and its kind."""
    return hashlib.blake2b(
        orjson.dumps([kind, form.to_wire()], option=orjson.OPT_SORT_KEYS), digest_size=32
    ).hexdigest()


def _never_registered(exc: BaseException) -> bool:
    """Errors that prove Popbill did not register the request."""
    if isinstance(exc, TransportError):
        return not exc.sent
    # A business refusal, a token or signature refusal and a 429 are all answers from before
    # anything was processed; a bare 5xx or a garbled answer is not proof of anything.
    return isinstance(exc, (InvalidRequestError, BusinessError, AuthError, RateLimitError))


def _money(amount: Decimal) -> str:
    return f"{amount:,}"


def send_request(
    engine: Engine,
    corp_num: str,
    kind: str,
    form: PaymentForm | RefundForm,
    post: Callable[[str, str | None], str],
    *,
    amount: Decimal,
    counterparty: str,
    force: bool = False,
) -> TrackedItem:
    """Commit the intent, POST (post(corp_num, user_id) -> code), record the code.

    kind is 'settle' or 'refund'. Raises RequestRefused before sending, OutcomeUnknown when
    the request may have been registered without our knowing its code."""
    digest = form_digest(kind, form)
    with Session(engine, expire_on_commit=False) as session:
        member = session.scalars(select(Member).where(Member.corp_num == corp_num).with_for_update()).one_or_none()
        if member is None:
            raise RequestRefused(f"CorpNum: {corp_num} is not a member")
        # Checked and written under the member row's lock: two identical requests at once
        # cannot both pass.
        open_twin = session.scalars(
            select(TrackedItem).where(
                TrackedItem.member_id == member.id, TrackedItem.kind == kind, TrackedItem.form_digest == digest,
                TrackedItem.state.in_([SENDING, UNKNOWN]),
            )
        ).first()  # fmt: skip
        if open_twin is not None and not force:
            raise RequestRefused(
                f"an identical {_call(kind)} for {corp_num} (item {open_twin.id}, {_money(amount)}) sent at "
                f"{open_twin.requested_at:%Y-%m-%d %H:%M:%S %Z} has an unknown outcome and may have been "
                "registered; wait until `ledger pending poll` resolves it, or pass --force to send another"
            )
        item = TrackedItem(
            member_id=member.id, kind=kind, state=SENDING, amount=amount, counterparty=counterparty[:100],
            form_digest=digest,
        )  # fmt: skip
        session.add(item)
        session.commit()  # the intent exists before anything is sent
        user_id = member.user_id
    try:
        code = post(corp_num, user_id)
    except Exception as exc:
        proven = _never_registered(exc)
        try:
            _finish(engine, item.id, state=REFUSED if proven else UNKNOWN, error=_describe(exc), final=proven)
        except DBAPIError:
            pass  # the intent stays `sending`, which the poller treats as unknown once it is old
        if proven:
            raise
        raise OutcomeUnknown(
            f"{_call(kind)} for {corp_num} ({_money(amount)}) MAY HAVE BEEN REGISTERED: {_describe(exc)}. "
            "Do not send it again. It is recorded as unknown (item "
            f"{item.id}); `ledger pending poll` looks for it in the member's history and says what happened."
        ) from None
    try:
        _finish(engine, item.id, state=PENDING, code=code)
    except DBAPIError as exc:
        raise OutcomeUnknown(
            f"{_call(kind)} for {corp_num} was registered with code {code}, but the ledger could not record "
            f"it ({_describe(exc)}). Do not send it again; once the database is back run "
            f"`ledger track {kind} {corp_num} {code}` (the poller would also find it in the history)."
        ) from None
    item.code, item.state = code, PENDING
    return item


def _finish(engine: Engine, item_id: int, *, state: str, code: str | None = None, error: str | None = None,
            final: bool = False) -> None:  # fmt: skip
    """Record the outcome, on a fresh connection, retrying while the database is away: the
    code in hand is the one thing that must not be lost."""
    values = {"state": state, "code": code, "error": error, "answered_at": dt.datetime.now(dt.UTC)}
    if final:
        values["resolved_at"] = values["answered_at"]

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(update(TrackedItem).where(TrackedItem.id == item_id).values(**values))

    try:
        retry_transient(write, attempts=6, max_seconds=20)
    except DBAPIError as exc:
        if not is_transient(exc) or state != PENDING:
            log.error("could not record the outcome of request %s: %s", item_id, _describe(exc))
        raise


def _call(kind: str) -> str:
    return "PaymentRequest" if kind == "settle" else "Refund"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PopbillError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return f"database error: {reason}"
    return f"{type(exc).__name__}: {exc}"


def _checked(validate_form, form, corp_num: str, call: str):
    """The form and CorpNum, validated before anything is recorded or sent."""
    try:
        return validate_form(form, call), check.corp_num(corp_num, call)
    except InvalidRequestError as exc:
        raise RequestRefused(str(exc)) from None


def request_payment(engine: Engine, client: PopbillClient, corp_num: str, form: PaymentForm, *,
                    force: bool = False) -> TrackedItem:  # fmt: skip
    """PaymentRequest, tracked from before it is sent. Validation happens first."""
    form, corp_num = _checked(check.payment_form, form, corp_num, "PaymentRequest")

    def post(corp: str, user_id: str | None) -> str:
        return client.payment_request(corp, form, user_id).settle_code

    return send_request(
        engine, corp_num, "settle", form, post, amount=form.settle_cost, counterparty=form.settler_name, force=force
    )


def request_refund(engine: Engine, client: PopbillClient, corp_num: str, form: RefundForm, *,
                   force: bool = False, refundable: Decimal | None = None) -> TrackedItem:  # fmt: skip
    """Refund, never more than GetRefundableBalance (read here unless the caller has just read
    it, as the CLI does to show it), tracked from before it is sent."""
    form, corp_num = _checked(check.refund_form, form, corp_num, "Refund")

    if refundable is None:
        with Session(engine) as session:
            user_id = session.scalar(select(Member.user_id).where(Member.corp_num == corp_num))
        refundable = client.get_refundable_balance(corp_num, user_id)
    if form.request_point > refundable:
        raise RequestRefused(f"points: {form.request_point} is more than the refundable balance {refundable}")

    def post(corp: str, user_id: str | None) -> str:
        return client.refund(corp, form, user_id).refund_code

    return send_request(
        engine, corp_num, "refund", form, post, amount=form.request_point, counterparty=form.account_name, force=force
    )
