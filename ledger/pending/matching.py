"""Requests whose code we never saw, settled from the member's history.

Neither the payment nor the refund history carries codes, so an entry is ours when its amount,
its settler (deposits) or account holder (refunds) and its registration time match the intent;
entries already matched to another of our requests are not taken twice. Found: the item
follows that entry's state. Not found once the grace period after the request has passed:
the request never registered (`not_found`), and the same request may be sent again.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging

from sqlalchemy import Engine, select, text, update

from ledger.db.work_queue import each_due
from ledger.history.codes import load_codes
from ledger.kst import KST
from ledger.metrics import process as process_metrics
from ledger.pending.models import NOT_FOUND, PENDING, TrackedItem
from ledger.pending.polling import PollOutcome, classify, next_interval
from ledger.popbill import PopbillClient, PopbillError
from ledger.popbill.errors import describe
from ledger.settings import Settings

log = logging.getLogger(__name__)

# Our clock and Popbill's never agree to the second, and a request's registration time falls
# somewhere between our sending it and its answer (or its timeout).
CLOCK_SKEW = dt.timedelta(minutes=5)

_TAKE_DUE = text(
    """
    SELECT t.id, t.kind, t.state, t.amount, t.counterparty, t.requested_at, t.answered_at, t.poll_count,
           t.doubtful_polls, t.member_id, m.corp_num, m.user_id
    FROM tracked_items t JOIN members m ON m.id = t.member_id
    WHERE t.code IS NULL AND t.next_poll_at <= :now AND NOT (t.id = ANY(:seen))
      AND (t.state IN ('unknown', 'pending')
           OR (t.state = 'sending' AND t.requested_at < :now - make_interval(secs => :sending_grace)))
    ORDER BY t.next_poll_at
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
    """
)


def resolve_uncoded(engine: Engine, client: PopbillClient, settings: Settings, *, now: dt.datetime | None = None,
                    limit: int = 100) -> list[PollOutcome]:  # fmt: skip
    """Look every due request without a code up in its member's history, once."""
    now = now or dt.datetime.now(dt.UTC)
    codes = load_codes(engine)
    # A request still `sending` after the read timeout (and then some) lost its process.
    params = {"now": now, "seen": [], "sending_grace": settings.read_timeout + 60}
    outcomes = []
    for conn, item in each_due(engine, _TAKE_DUE, params, limit=limit):
        params["seen"].append(item.id)
        taken = collections.Counter(
            conn.scalars(
                select(TrackedItem.registered_at).where(
                    TrackedItem.member_id == item.member_id, TrackedItem.kind == item.kind,
                    TrackedItem.id != item.id, TrackedItem.registered_at.is_not(None),
                )
            )
        )  # fmt: skip
        polls = item.poll_count + 1
        values = {"last_polled_at": now, "poll_count": polls, "next_poll_at": now + next_interval(polls, settings)}
        doubt = None
        try:
            entry = _find(client, item, taken, now)
        except Exception as exc:  # this item's doubt; never the other items' wait
            if not isinstance(exc, PopbillError):
                log.exception("looking up request %s of %s failed", item.id, item.corp_num)
            entry, doubt = None, describe(exc)
        state, raw_state = item.state, None
        if doubt is None and entry is not None:
            registered_at, raw_state, raw = entry
            state = classify(item.kind, raw_state, codes)
            if state is None:
                doubt = f"the history lists this request with state {raw_state}, which state_codes does not define"
                state = item.state
            else:
                values |= {"state": state, "raw_state": raw_state, "registered_at": registered_at, "last_answer": raw,
                           "resolved_at": None if state == PENDING else now}  # fmt: skip
        elif doubt is None and now - (item.answered_at or item.requested_at) > dt.timedelta(
            seconds=settings.pending_unknown_grace
        ):
            state = NOT_FOUND  # the whole history was read, clearly, and it is not there
            values |= {"state": state, "resolved_at": now}
        elif doubt is None:
            values["next_poll_at"] = now + dt.timedelta(seconds=min(60, settings.pending_unknown_grace / 4))
        if doubt is not None:
            process_metrics.DOUBTFUL_ANSWERS.labels("GetPaymentHistory" if item.kind == "settle" else "GetRefundHistory").inc()
            log.warning("request %s of %s stays %s: %s", item.id, item.corp_num, item.state, doubt)
            values |= {"doubtful_polls": item.doubtful_polls + 1, "last_doubt": doubt}
        else:
            values |= {"doubtful_polls": 0, "last_doubt": None}
        conn.execute(update(TrackedItem).where(TrackedItem.id == item.id).values(**values))
        outcomes.append(PollOutcome(item.corp_num, item.kind, f"item {item.id}", state, raw_state, doubt))
    return outcomes


def _find(client: PopbillClient, item, taken: collections.Counter, now: dt.datetime):
    """(registered_at, raw state, raw row) of the first entry that fits and is not taken."""
    earliest = item.requested_at - CLOCK_SKEW
    latest = (item.answered_at or now) + CLOCK_SKEW
    for registered_at, amount, name, raw_state, raw in _entries(client, item, earliest):
        if not (earliest <= registered_at <= latest and amount == item.amount and name == item.counterparty):
            continue
        if taken[registered_at] > 0:  # this entry is another request of ours
            taken[registered_at] -= 1
            continue
        return registered_at, raw_state, raw
    return None


def _entries(client: PopbillClient, item, earliest: dt.datetime):
    if item.kind == "settle":
        first_day = earliest.astimezone(KST).date()
        last_day = max(first_day, dt.datetime.now(KST).date())
        for page in client.iter_payment_history(item.corp_num, first_day, last_day, per_page=1000,
                                                user_id=item.user_id):  # fmt: skip
            for row in page.items:
                if row.reg_dt is not None:
                    yield row.reg_dt, row.settle_cost, row.settler_name, row.settle_state, row.raw
        return
    # Refunds come newest first, without a date filter: stop past the request's time.
    for page in client.iter_refund_history(item.corp_num, per_page=1000, user_id=item.user_id):
        for row in page.items:
            if row.req_dt is None:
                continue
            if row.req_dt < earliest:
                return
            yield row.req_dt, row.request_point, row.account_name, row.state, row.raw
