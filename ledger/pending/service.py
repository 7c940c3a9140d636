"""Deposit and refund requests, codes tracked from elsewhere, and the poller that follows
them: due items are taken with FOR UPDATE SKIP LOCKED, so pollers never collide."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from sqlalchemy import Engine, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ledger.db.work_queue import each_due
from ledger.errors import UserInputError
from ledger.history.codes import load_codes
from ledger.members.models import Member
from ledger.members.service import MemberError, get_member
from ledger.pending.models import CANCELLED, DONE, INVALID, PENDING, TrackedItem
from ledger.popbill import BusinessError, PaymentForm, PopbillClient, RefundForm
from ledger.popbill import validation as check
from ledger.popbill.codes import Codes
from ledger.popbill.errors import InvalidRequestError
from ledger.settings import Settings

KINDS = ("settle", "refund")


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


@dataclasses.dataclass(frozen=True)
class PollOutcome:
    corp_num: str
    kind: str
    code: str
    state: str
    raw_state: int | None

    @property
    def final(self) -> bool:
        return self.state != PENDING

    @property
    def history(self) -> str:
        """The history kind to sync once this item is final."""
        return "payments" if self.kind == "settle" else "refunds"


def classify(kind: str, raw_state: int | None, codes: Codes) -> str:
    if kind == "settle":
        if raw_state in codes.settle_pending:
            return PENDING
        return DONE if raw_state in codes.settle_done else CANCELLED
    if raw_state in codes.refund_pending:
        return PENDING
    return DONE if raw_state in codes.refund_done else CANCELLED


def next_interval(poll_count: int, settings: Settings) -> dt.timedelta:
    """First poll interval, doubling with every poll, capped."""
    seconds = settings.pending_first_poll * (2 ** max(0, poll_count - 1))
    return dt.timedelta(seconds=min(seconds, settings.pending_max_interval))


_TAKE_DUE = text(
    """
    SELECT t.id, t.kind, t.code, t.poll_count, m.corp_num, m.user_id
    FROM tracked_items t JOIN members m ON m.id = t.member_id
    WHERE t.state = 'pending' AND t.code IS NOT NULL AND t.next_poll_at <= :now AND NOT (t.id = ANY(:seen))
    ORDER BY t.next_poll_at
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
    """
)


def poll_due(engine: Engine, client: PopbillClient, settings: Settings, *, now: dt.datetime | None = None,
             limit: int = 500) -> list[PollOutcome]:  # fmt: skip
    """Poll every due item once (each in its own transaction) and return what was seen; requests
    of ours whose code we never saw are looked up in their member's history."""
    now = now or dt.datetime.now(dt.UTC)
    codes = load_codes(engine)
    outcomes: list[PollOutcome] = []
    seen: list[int] = []  # each item once per pass, however short its interval
    for conn, item in each_due(engine, _TAKE_DUE, {"now": now, "seen": seen}, limit=limit):
        try:
            if item.kind == "settle":
                answer = client.get_settle_result(item.corp_num, item.code, item.user_id)
                raw_state = answer.settle_state
            else:
                answer = client.get_refund_info(item.corp_num, item.code, item.user_id)
                raw_state = answer.state
            state, last_answer = classify(item.kind, raw_state, codes), answer.raw
        except BusinessError as exc:
            # Popbill refused to look the code up: it does not exist (or not for this
            # member). Polling it forever would only repeat the refusal.
            raw_state, state = None, INVALID
            last_answer = {"code": exc.code, "message": exc.message}
        seen.append(item.id)
        polls = item.poll_count + 1
        conn.execute(
            update(TrackedItem)
            .where(TrackedItem.id == item.id)
            .values(
                state=state, raw_state=raw_state, last_polled_at=now, poll_count=polls, last_answer=last_answer,
                next_poll_at=now + next_interval(polls, settings), resolved_at=None if state == PENDING else now,
            )
        )  # fmt: skip
        outcomes.append(PollOutcome(item.corp_num, item.kind, item.code, state, raw_state))
    from ledger.pending.matching import resolve_uncoded

    return outcomes + resolve_uncoded(engine, client, settings, now=now, limit=limit)


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


def payment_form(amount: str, depositor: str, name: str, email: str, hp: str) -> PaymentForm:
    try:
        cost = check.positive_amount("--amount", amount)
    except InvalidRequestError as exc:
        raise PendingError(str(exc)) from None
    return PaymentForm(settler_name=name, settler_email=email, notify_hp=hp, payment_name=depositor, settle_cost=cost)


def refund_form(points: str, bank: str, account: str, holder: str, contact: str, tel: str, reason: str) -> RefundForm:
    try:
        amount = check.positive_amount("--points", points)
    except InvalidRequestError as exc:
        raise PendingError(str(exc)) from None
    return RefundForm(contact_name=contact, tel=tel, request_point=Decimal(amount), account_bank=bank,
                      account_num=account, account_name=holder, reason=reason)  # fmt: skip
