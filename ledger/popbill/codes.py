"""The raw state and type codes the simulator speaks, and the Codes a client of the ledger
works with. The sources do not enumerate them: the running system reads their meaning from
the state_codes and tx_types tables (ledger.history.codes.load_codes), which migrations seed
with these same values and a partner corrects with SQL.
"""

from __future__ import annotations

import dataclasses

SETTLE_PENDING, SETTLE_DONE, SETTLE_CANCELLED = 1, 2, 3
REFUND_PENDING, REFUND_DONE, REFUND_REJECTED = 1, 2, 3
TX_CHARGE, TX_USE, TX_BONUS, TX_REFUND, TX_ADJUST_UP, TX_ADJUST_DOWN = 1, 2, 3, 4, 5, 6


@dataclasses.dataclass(frozen=True)
class Codes:
    settle_pending: frozenset[int] = frozenset({SETTLE_PENDING})
    settle_done: frozenset[int] = frozenset({SETTLE_DONE})
    settle_cancelled: frozenset[int] = frozenset({SETTLE_CANCELLED})
    refund_pending: frozenset[int] = frozenset({REFUND_PENDING})
    refund_done: frozenset[int] = frozenset({REFUND_DONE})
    refund_cancelled: frozenset[int] = frozenset({REFUND_REJECTED})
    credit_tx_types: frozenset[int] = frozenset({TX_CHARGE, TX_BONUS, TX_ADJUST_UP})
