"""Deposit and refund requests, codes tracked from elsewhere, and the poller that follows
them: due items are taken with FOR UPDATE SKIP LOCKED, so pollers never collide."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import Engine, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ledger.db.work_queue import due_batches
from ledger.errors import UserInputError
from ledger.history.codes import load_codes
from ledger.members.models import Member
from ledger.members.service import MemberError, get_member
from ledger.metrics import process as process_metrics
from ledger.pending.matching import resolve_uncoded
from ledger.pending.models import INVALID, PENDING, TrackedItem
from ledger.pending.polling import PollOutcome, classify, next_interval
from ledger.popbill import BusinessError, PaymentForm, PopbillClient, PopbillError, RefundForm
from ledger.popbill import validation as check
from ledger.popbill.codes import Codes
from ledger.popbill.errors import CLIENT_SIDE_CODE, InvalidRequestError, describe
from ledger.settings import Settings

KINDS = ("settle", "refund")
log = logging.getLogger(__name__)


class PendingError(UserInputError):
    """Bad input for a request or a tracked code; the message names the field."""


def _member(session: Session, corp_num: str) -> Member:
    try:
        return get_member(session, corp_num)
    except MemberError as exc:
        raise PendingError(str(exc)) from None


def track_code(session: Session, corp_num: str, kind: str, code: str) -> TrackedItem:
    """Follow a settle or refund code issued elsewhere (say, by the partner's own web app).
    Tracking a code twice is harmless: the existing item is returned."""
    if kind not in KINDS:
        raise PendingError(f"kind: must be settle or refund, got {kind!r}")
    try:
        code = check.code("SettleCode" if kind == "settle" else "RefundCode", code)
    except InvalidRequestError as exc:
        raise PendingError(str(exc)) from None
    member = _member(session, corp_num)
    session.execute(
        insert(TrackedItem)
        .values(member_id=member.id, kind=kind, code=code)
        .on_conflict_do_nothing(constraint="uq_tracked_items_member_id_kind_code")
    )
    return session.scalars(
        select(TrackedItem).where(
            TrackedItem.member_id == member.id, TrackedItem.kind == kind, TrackedItem.code == code
        )
    ).one()


_TAKE_DUE = text(
    """
    SELECT t.id, t.kind, t.code, t.poll_count, t.doubtful_polls, m.corp_num, m.user_id
    FROM tracked_items t JOIN members m ON m.id = t.member_id
    WHERE t.state = 'pending' AND t.code IS NOT NULL AND t.next_poll_at <= :now AND NOT (t.id = ANY(:seen))
    ORDER BY t.next_poll_at
    LIMIT :batch
    FOR UPDATE OF t SKIP LOCKED
    """
)
# Items claimed (and locked) at once; their calls go out together, through the client's gate.
POLL_BATCH = 64


@dataclasses.dataclass(frozen=True)
class _Seen:
    """What one poll of one item found: a clear state, or doubt (state None, and why)."""

    state: str | None
    raw_state: int | None = None
    answer: dict | None = None
    doubt: str | None = None


def _ask(client: PopbillClient, codes: Codes, item) -> _Seen:
    """One item's poll, never raising: anything but a clear, documented answer is doubt."""
    call = "GetSettleResult" if item.kind == "settle" else "GetRefundInfo"
    try:
        if item.kind == "settle":
            answer = client.get_settle_result(item.corp_num, item.code, item.user_id)
            raw_state = answer.settle_state
        else:
            answer = client.get_refund_info(item.corp_num, item.code, item.user_id)
            raw_state = answer.state
    except BusinessError as exc:
        if _refuses_the_code(exc):
            # Popbill refused to look the code up: it does not exist (or not for this
            # member). Polling it forever would only repeat the refusal.
            return _Seen(INVALID, answer={"code": exc.code, "message": exc.message, "status": exc.status})
        return _Seen(None, doubt=describe(exc))
    except PopbillError as exc:
        return _Seen(None, doubt=describe(exc))
    except Exception as exc:  # a bug of ours must not stop the other items either
        log.exception("polling %s %s of %s failed", item.kind, item.code, item.corp_num)
        return _Seen(None, doubt=f"{call}: {type(exc).__name__}: {exc}")
    state = classify(item.kind, raw_state, codes)
    if state is None:
        field = "settleState" if item.kind == "settle" else "state"
        return _Seen(None, raw_state, answer.raw, f"{call} answered {field} {raw_state}, which state_codes does not "
                                                   "define as pending, done or cancelled")  # fmt: skip
    return _Seen(state, raw_state, answer.raw)


def _refuses_the_code(exc: BusinessError) -> bool:
    """A refusal that is an answer about the code itself: Popbill's error form with a 4xx
    status. The same form with HTTP 200, or the SDKs' own client-side code, is no such answer."""
    return exc.status is not None and 400 <= exc.status < 500 and exc.code != CLIENT_SIDE_CODE


def poll_due(engine: Engine, client: PopbillClient, settings: Settings, *, now: dt.datetime | None = None,
             limit: int = 500) -> list[PollOutcome]:  # fmt: skip
    """Poll every due item once and return what was seen; requests of ours whose code we never
    saw are looked up in their member's history. Items are claimed a batch at a time (FOR
    UPDATE SKIP LOCKED: pollers never collide) and their calls go out together, bounded by the
    client's gate (POPBILL_MAX_CONCURRENCY, one shared 429 pause), each item in isolation: one
    bad answer is that item's doubt, never the others' wait."""
    now = now or dt.datetime.now(dt.UTC)
    codes = load_codes(engine)
    outcomes: list[PollOutcome] = []
    seen: list[int] = []  # each item once per pass, however short its interval
    params = {"now": now, "seen": seen, "batch": POLL_BATCH}
    with ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="poll") as pool:
        for conn, items in due_batches(engine, _TAKE_DUE, params, limit=limit):
            for item, found in zip(items, pool.map(lambda i: _ask(client, codes, i), items), strict=True):
                seen.append(item.id)
                values = _values(item, found, now, settings)
                conn.execute(update(TrackedItem).where(TrackedItem.id == item.id).values(**values))
                outcomes.append(PollOutcome(item.corp_num, item.kind, item.code, found.state or PENDING, found.raw_state,
                                            found.doubt))  # fmt: skip

    return outcomes + resolve_uncoded(engine, client, settings, now=now, limit=limit)


def _values(item, found: _Seen, now: dt.datetime, settings: Settings) -> dict:
    polls = item.poll_count + 1
    values = {"last_polled_at": now, "poll_count": polls, "next_poll_at": now + next_interval(polls, settings)}
    if found.state is None:
        process_metrics.DOUBTFUL_ANSWERS.labels("GetSettleResult" if item.kind == "settle" else "GetRefundInfo").inc()
        log.warning("%s %s of %s stays pending: %s", item.kind, item.code, item.corp_num, found.doubt)
        return values | {"doubtful_polls": item.doubtful_polls + 1, "last_doubt": found.doubt}
    return values | {
        "state": found.state, "raw_state": found.raw_state, "last_answer": found.answer, "doubtful_polls": 0,
        "last_doubt": None, "resolved_at": None if found.state == PENDING else now,
    }  # fmt: skip


def next_due(engine: Engine) -> tuple[int, dt.datetime | None]:
    """How many items are pending, and when the first of them is due to be polled."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT count(*) AS n, min(next_poll_at) AS due FROM tracked_items WHERE state = 'pending'")
        ).one()
    return row.n, row.due


def list_items(engine: Engine, *, pending_only: bool = False) -> list[dict]:
    query = """
        SELECT t.id, m.corp_num, t.kind, t.code, t.amount, t.state, t.raw_state, t.requested_at, t.last_polled_at,
               t.next_poll_at, t.poll_count, t.resolved_at, t.error
        FROM tracked_items t JOIN members m ON m.id = t.member_id
    """
    if pending_only:
        query += " WHERE t.state IN ('pending', 'sending', 'unknown')"
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(query + " ORDER BY t.requested_at"))]


def payment_form(amount: str, depositor: str, name: str, email: str, hp: str, *,
                 maximum: Decimal = check.DEFAULT_MAX_WON) -> PaymentForm:  # fmt: skip
    """The form from the command's options, the amount checked under its option's name (the
    rest is checked with the form, before anything is sent: sending.request_payment)."""
    try:
        cost = check.won("--amount", amount, maximum)
    except InvalidRequestError as exc:
        raise PendingError(str(exc)) from None
    return PaymentForm(settler_name=name, settler_email=email, notify_hp=hp, payment_name=depositor, settle_cost=cost)


def refund_form(points: str, bank: str, account: str, holder: str, contact: str, tel: str, reason: str, *,
                maximum: Decimal = check.DEFAULT_MAX_WON) -> RefundForm:  # fmt: skip
    try:
        amount = check.won("--points", points, maximum)
    except InvalidRequestError as exc:
        raise PendingError(str(exc)) from None
    return RefundForm(contact_name=contact, tel=tel, request_point=amount, account_bank=bank,
                      account_num=account, account_name=holder, reason=reason)  # fmt: skip
