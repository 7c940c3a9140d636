"""Starts batched across a process's threads (ledger/sync/batches.py, the sync's START): every
request gets its own answer, one key is never twice in a batch, groups never mix, an error
reaches every request of its batch and no other; and one process syncing the same member
from two threads at once runs it once (the other is turned away as already running)."""

from __future__ import annotations

import threading
import time

import pytest

from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.batches import Combiner
from ledger.sync.service import sync_all, sync_member_kinds
from tests.conftest import add_members, client_settings, small_config


def run_threads(count: int, work) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def one(n: int) -> None:
        barrier.wait()
        try:
            results[n] = work(n)
        except Exception as exc:  # noqa: BLE001 - kept to be asserted on
            results[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_every_request_gets_its_own_answer_and_batches_respect_keys_and_groups():
    batches: list[list] = []

    def run(requests: list) -> list:
        batches.append(list(requests))
        time.sleep(0.01)  # others queue meanwhile
        if any(r[1] == "boom" for r in requests):
            raise ValueError("refused")
        return [f"{key}:{group}:{n}" for n, key, group in requests]

    combiner = Combiner(run, limit=8)
    keys = [f"k{n % 5}" for n in range(39)] + ["boom"]
    results = run_threads(40, lambda n: combiner.submit((n, keys[n], n % 2), key=keys[n], group=n % 2))

    boom = next(b for b in batches if any(r[1] == "boom" for r in b))
    for n, result in enumerate(results):
        if any(r[0] == n for r in boom):
            assert isinstance(result, ValueError)
        else:
            assert result == f"{keys[n]}:{n % 2}:{n}"
    assert sorted(r[0] for b in batches for r in b) == list(range(40))  # each request ran once
    assert any(len(b) > 1 for b in batches)  # they did gather
    for batch in batches:
        assert len(batch) <= 8
        assert len({r[1] for r in batch}) == len(batch)  # one key at most once a batch
        assert len({r[2] for r in batch}) == 1  # one group a batch


CORPS = [f"{1300000000 + 7919 * n:010d}" for n in range(12)]


@pytest.fixture
def members(clean_engine):
    add_members(clean_engine, CORPS)
    return clean_engine


def test_one_process_syncing_a_member_from_two_threads_runs_it_once(members):
    with Simulator(small_config(history_days=5)) as sim, PopbillClient(client_settings(sim)) as client:
        sim.inject("latency", rate=1.0, seconds=0.05)  # both in flight at once
        results = run_threads(2, lambda n: sync_member_kinds(members, client, CORPS[0], today=sim.world.today()))
        assert not any(isinstance(r, Exception) for r in results), results
        statuses = sorted(r.status for result in results for r in result)
        assert statuses == ["skipped"] * 3 + ["succeeded"] * 3
        skipped = [r for result in results for r in result if r.status == "skipped"]
        assert all(r.error == "already running" and not r.locked_by_other for r in skipped)

        # Many members at once: their starts are batched, and every one is synced once.
        sim.clear_faults()
        sim.inject("latency", rate=1.0, seconds=0.02)
        everything = sync_all(members, client, today=sim.world.today(), jobs=12)
    assert sorted((r.corp_num, r.kind) for r in everything) == sorted(
        (c, k) for c in CORPS for k in ("payments", "usage", "refunds")
    )
    assert all(r.status == "succeeded" for r in everything), [(r.corp_num, r.kind, r.error) for r in everything]
