"""The simulator's generated histories: deterministic, consistent, and alive."""

from __future__ import annotations

from decimal import Decimal

from ledger.popbill import codes
from ledger.simulator import World
from tests.conftest import small_config

MEMBERS = [f"{n:010d}" for n in (1234567890, 2208112345, 1018212345, 5555555555)]
CREDITS = {codes.TX_CHARGE, codes.TX_BONUS, codes.TX_ADJUST_UP}


def chain_breaks(rows):
    breaks, previous = [], Decimal(0)
    for i, row in enumerate(rows):
        sign = 1 if row["txType"] in CREDITS else -1
        if previous + sign * Decimal(row["txPoint"]) != Decimal(row["balance"]):
            breaks.append(i)
        previous = Decimal(row["balance"])
    return breaks


def test_same_seed_same_history_other_seed_other_history():
    a, b, c = World(small_config()), World(small_config()), World(small_config(seed=99))
    assert a.usage_truth(MEMBERS[0]) == b.usage_truth(MEMBERS[0])
    assert a.payments_truth(MEMBERS[0]) == b.payments_truth(MEMBERS[0])
    assert a.usage_truth(MEMBERS[0]) != c.usage_truth(MEMBERS[0])
    assert a.usage_truth(MEMBERS[0]) != a.usage_truth(MEMBERS[1])


def test_members_can_share_a_number_of_histories():
    """bench/scale_bench.py clones one member's ledger onto those sharing its history: every
    field must then be equal, not only the usage rows."""
    shared = World(small_config(distinct_histories=3))
    same, other = ["0000000001", "0000000004", "0000000007"], "0000000002"
    histories = [(shared.usage_truth(c), shared.payments_truth(c), shared.refunds_truth(c)) for c in same]
    assert histories[0] == histories[1] == histories[2]
    assert all(histories[0])  # usage, payments and refunds all present, so all were compared
    assert shared.usage_truth(other) != histories[0][0]
    own = World(small_config())
    assert own.usage_truth(same[0]) != own.usage_truth(same[1])


def test_balance_chain_is_whole_and_ends_at_the_balance():
    world = World(small_config(history_days=200))
    for corp in MEMBERS:
        rows = world.usage_truth(corp)
        assert rows and chain_breaks(rows) == []
        assert Decimal(rows[-1]["balance"]) == world.balance(corp)
        assert [r["txDT"] for r in rows] == sorted(r["txDT"] for r in rows)


def test_histories_have_pending_cancelled_and_completed_items_and_bonus():
    world = World(small_config(history_days=400, usage_per_day=20))
    states, refund_states, bonus = set(), set(), False
    for n in range(12):
        corp = f"{1000000000 + n}"
        states |= {p["settleState"] for p in world.payments_truth(corp)}
        refund_states |= {r["state"] for r in world.refunds_truth(corp)}
        bonus |= any(r["txType"] == codes.TX_BONUS for r in world.usage_truth(corp))
        assert world.refundable_balance(corp) <= world.balance(corp)
    assert {codes.SETTLE_PENDING, codes.SETTLE_DONE, codes.SETTLE_CANCELLED} <= states
    assert codes.REFUND_DONE in refund_states
    assert bonus


def test_volume_is_configurable():
    world = World(small_config(history_days=100, usage_per_day=50))
    rows = world.usage_truth(MEMBERS[0])
    assert 4000 <= len(rows) <= 5500


def test_advancing_the_clock_appends_new_days_to_the_chain():
    world = World(small_config())
    before = world.usage_truth(MEMBERS[0])
    world.advance_days(3)
    after = world.usage_truth(MEMBERS[0])
    assert after[: len(before)] == before and len(after) > len(before)
    assert chain_breaks(after) == []


def test_set_balance_keeps_the_chain_whole():
    world = World(small_config())
    world.set_balance(MEMBERS[0], "12.5")
    rows = world.usage_truth(MEMBERS[0])
    assert world.balance(MEMBERS[0]) == Decimal("12.5") == Decimal(rows[-1]["balance"])
    assert chain_breaks(rows) == []
