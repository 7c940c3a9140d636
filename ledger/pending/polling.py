"""What the poller and the matcher of uncoded requests share: what one poll came to, which
state a raw settleState or refund state means, and when an item is polled next."""

from __future__ import annotations

import dataclasses
import datetime as dt

from ledger.pending.models import CANCELLED, DONE, PENDING, SENDING, UNKNOWN
from ledger.popbill.codes import Codes
from ledger.settings import Settings


@dataclasses.dataclass(frozen=True)
class PollOutcome:
    corp_num: str
    kind: str
    code: str
    state: str
    raw_state: int | None
    doubt: str | None = None  # the answer was not clearly a state: the item stays as it was, and why

    @property
    def final(self) -> bool:
        return self.state not in (PENDING, SENDING, UNKNOWN)

    @property
    def history(self) -> str:
        """The history kind to sync once this item is final."""
        return "payments" if self.kind == "settle" else "refunds"


def classify(kind: str, raw_state: int | None, codes: Codes) -> str | None:
    """pending, done or cancelled as state_codes defines the raw state; None for a state it
    does not define (or none at all): not a fact to act on, whatever the nearest known one."""
    if kind == "settle":
        groups = ((PENDING, codes.settle_pending), (DONE, codes.settle_done), (CANCELLED, codes.settle_cancelled))
    else:
        groups = ((PENDING, codes.refund_pending), (DONE, codes.refund_done), (CANCELLED, codes.refund_cancelled))
    return next((state for state, members in groups if raw_state in members), None)


def next_interval(poll_count: int, settings: Settings) -> dt.timedelta:
    """First poll interval, doubling with every poll, capped."""
    seconds = settings.pending_first_poll * (2 ** max(0, poll_count - 1))
    return dt.timedelta(seconds=min(seconds, settings.pending_max_interval))
