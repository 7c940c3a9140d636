"""The balance check reads members at once, through the client's gate, as the sync does: never
more calls in flight than POPBILL_MAX_CONCURRENCY, a 429 pauses every thread, one slow member
holds nobody up, and one member's malformed answer is that member's problem alone."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from sqlalchemy import func, insert, select

from ledger.alerts import service
from ledger.balances.models import BalanceSnapshot
from ledger.members.models import Member
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from tests.conftest import client_settings, small_config

MEMBERS = [f"{1_000_000_000 + n:010d}" for n in range(500)]
SLOW, BAD = MEMBERS[17], MEMBERS[311]
CONCURRENCY = 8
PAUSE = 1.0


def test_500_members_bounded_paused_together_slow_and_bad_members_isolated(clean_engine):
    with clean_engine.begin() as conn:
        conn.execute(insert(Member), [{"corp_num": corp} for corp in MEMBERS])
    with Simulator(small_config(history_days=1, usage_per_day=0)) as sim:
        sim.world.prepare(MEMBERS)  # histories made before the clock starts, not during the check
        sim.inject("latency", path="/POPBILL_TEST/Point", corp_num=SLOW, count=1, seconds=PAUSE)
        sim.inject("rewrite", path="/POPBILL_TEST/Point", corp_num=BAD, rate=1.0, edits={"remainPoint": "NaN"})
        sim.inject("rate_limit", path="/POPBILL_TEST/Point", skip=200, count=1, retry_after=PAUSE)
        settings = dataclasses.replace(client_settings(sim), max_concurrency=CONCURRENCY, alert_runway_days=0,
                                       alert_threshold=Decimal("0"), partner_threshold=Decimal("0"))  # fmt: skip
        with PopbillClient(settings) as client:
            readings = {r.subject: r for r in service.check_balances(clean_engine, client, settings)}
        log = sim.requests()
        assert 1 < sim.max_in_flight <= CONCURRENCY

    # The one malformed answer is its member's error, named; everyone else was read and kept.
    assert readings[BAD].balance is None and "GetBalance" in readings[BAD].error
    assert "remainPoint: nan is not a finite decimal number" in readings[BAD].error and "\n" not in readings[BAD].error
    assert [s for s, r in readings.items() if r.error] == [BAD]
    with clean_engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(BalanceSnapshot)).scalar()
        members_stored = conn.execute(
            select(func.count(func.distinct(BalanceSnapshot.corp_num))).where(BalanceSnapshot.subject == "member")
        ).scalar()
    assert stored == len(MEMBERS) - 1 + 1 and members_stored == len(MEMBERS) - 1  # and the partner's

    # The slow member held up nobody: while its call waited, the others kept going.
    [slow] = [r for r in log if r.corp_num == SLOW and r.path.endswith("/Point")]
    during = [r for r in log if slow.received_at < r.received_at < slow.received_at + PAUSE]
    assert len(during) > 50

    # After the 429, no call left until its Retry-After had passed (the calls already on their
    # way when it came are the only ones to arrive in the first moments).
    [limited] = [r for r in log if r.status == 429]
    quiet = [r for r in log if limited.received_at + 0.3 < r.received_at < limited.received_at + PAUSE - 0.1]
    assert quiet == [] and any(r.received_at >= limited.received_at + PAUSE for r in log)
