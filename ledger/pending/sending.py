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
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ledger.db.transient import is_transient, retry_transient
from ledger.errors import OutcomeUnknownError
from ledger.kst import KST
from ledger.members.models import Member
from ledger.pending.models import (
    CANCELLED,
    DONE,
    INVALID,
    NOT_FOUND,
    PENDING,
    REFUSED,
    SENDING,
    UNKNOWN,
    TrackedItem,
)
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


class OutcomeUnknown(OutcomeUnknownError):
    """The request may have been registered; the message says so and what not to do."""


def depositor(form: PaymentForm | RefundForm) -> str:
    """Whose name the money moves under: the deposit's payer (paymentName), the refund's
    account holder (accountName)."""
    return form.payment_name if isinstance(form, PaymentForm) else form.account_name


def form_digest(kind: str, form: PaymentForm | RefundForm) -> str:
    """What makes two requests identical (twins): the kind, the amount and the depositor. The
    rest of the form (who asks, where to notify) does not make it another deposit."""
    amount = form.settle_cost if isinstance(form, PaymentForm) else form.request_point
    return hashlib.blake2b(
        orjson.dumps([kind, format(Decimal(amount).normalize(), "f"), depositor(form).strip()]), digest_size=32
    ).hexdigest()


def _never_registered(exc: BaseException) -> bool:
    """Errors that prove Popbill did not register the request."""
    if isinstance(exc, TransportError):
        return not exc.sent
    # A business refusal, a token or signature refusal and a 429 are all answers from before
    # anything was processed; a bare 5xx or a garbled answer is not proof of anything.
    return isinstance(exc, (InvalidRequestError, BusinessError, AuthError, RateLimitError))


def _money(amount: Decimal) -> str:
    return f"{amount:,} won"


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
    twin_window: int = 600,
    dry_run: bool = False,
) -> TrackedItem | None:
    """Commit the intent, POST (post(corp_num, user_id) -> code), record the code.

    kind is 'settle' or 'refund'. Raises RequestRefused before sending, OutcomeUnknown when
    the request may have been registered without our knowing its code. dry_run: every check,
    the twin check included, and nothing written or sent (None)."""
    digest = form_digest(kind, form)
    with Session(engine, expire_on_commit=False) as session:
        member = session.scalars(select(Member).where(Member.corp_num == corp_num).with_for_update()).one_or_none()
        if member is None:
            raise RequestRefused(f"CorpNum: {corp_num} is not a member")
        # Checked and written under the member row's lock, in the database: two identical
        # requests at once (two shells, two machines) cannot both pass; the second waits for
        # the first's intent and sees it.
        twin = session.scalars(
            select(TrackedItem).where(
                TrackedItem.member_id == member.id, TrackedItem.kind == kind, TrackedItem.form_digest == digest,
                TrackedItem.requested_at > func.now() - dt.timedelta(seconds=twin_window),
            ).order_by(TrackedItem.requested_at.desc())
        ).first()  # fmt: skip
        if twin is not None and not force:
            raise RequestRefused(_twin_refusal(kind, corp_num, form, twin, twin_window))
        if dry_run:
            session.rollback()
            return None
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


_TWIN_STATES = {
    SENDING: "is being sent (no answer yet)",
    UNKNOWN: "has an unknown outcome: it may have been registered",
    PENDING: "was {registered} and is pending",
    DONE: "was {registered} and is done",
    CANCELLED: "was {registered} and was cancelled",
    INVALID: "was {registered}, a code Popbill no longer knows",
    REFUSED: "was refused by Popbill ({error})",
    NOT_FOUND: "never registered (it is not in the member's history)",
}


def _twin_refusal(kind: str, corp_num: str, form, twin: TrackedItem, window: int) -> str:
    registered = f"registered as {twin.code}" if twin.code else "registered (found in the member's history)"
    state = _TWIN_STATES.get(twin.state, "is {state}").format(registered=registered, error=twin.error, state=twin.state)
    sent = twin.requested_at.astimezone(KST)
    return (
        f"not sent: an identical {_call(kind)} for {corp_num} ({_money(twin.amount or 0)}, {depositor(form)!r}), "
        f"item {twin.id}, sent at {sent:%Y-%m-%d %H:%M:%S} KST, {state}. The same request within "
        f"{window // 60} minutes (LEDGER_MONEY_TWIN_WINDOW) is refused: pass --force to send another anyway"
    )


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
        retry_transient(write, max_seconds=20)
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


def _checked(validate_form, form, corp_num: str, call: str, settings):
    """The form and CorpNum, validated before anything is recorded or sent."""
    try:
        return validate_form(form, call, maximum=settings.money_max_won), check.corp_num(corp_num, call)
    except InvalidRequestError as exc:
        raise RequestRefused(str(exc)) from None


def request_payment(engine: Engine, client: PopbillClient, corp_num: str, form: PaymentForm, *,
                    force: bool = False, dry_run: bool = False) -> TrackedItem | None:  # fmt: skip
    """PaymentRequest, tracked from before it is sent. Every check comes first, the same with
    dry_run (which then sends nothing and returns None)."""
    settings = client.settings
    form, corp_num = _checked(check.payment_form, form, corp_num, "PaymentRequest", settings)

    def post(corp: str, user_id: str | None) -> str:
        return client.payment_request(corp, form, user_id).settle_code

    return send_request(
        engine, corp_num, "settle", form, post, amount=form.settle_cost, counterparty=form.settler_name, force=force,
        twin_window=settings.money_twin_window, dry_run=dry_run,
    )  # fmt: skip


def request_refund(engine: Engine, client: PopbillClient, corp_num: str, form: RefundForm, *,
                   force: bool = False, refundable: Decimal | None = None,
                   dry_run: bool = False) -> TrackedItem | None:  # fmt: skip
    """Refund, never more than GetRefundableBalance (read here unless the caller has just read
    it, as the CLI does to show it; an answer outside the documented shape raises, and nothing
    is sent), tracked from before it is sent."""
    settings = client.settings
    form, corp_num = _checked(check.refund_form, form, corp_num, "Refund", settings)

    if refundable is None:
        with Session(engine) as session:
            user_id = session.scalar(select(Member.user_id).where(Member.corp_num == corp_num))
        refundable = client.get_refundable_balance(corp_num, user_id)
    if not refundable.is_finite() or form.request_point > refundable:
        raise RequestRefused(f"points: {form.request_point} is more than the refundable balance {refundable}")

    def post(corp: str, user_id: str | None) -> str:
        return client.refund(corp, form, user_id).refund_code

    return send_request(
        engine, corp_num, "refund", form, post, amount=form.request_point, counterparty=form.account_name, force=force,
        twin_window=settings.money_twin_window, dry_run=dry_run,
    )  # fmt: skip
