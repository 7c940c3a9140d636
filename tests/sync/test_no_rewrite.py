"""A re-sync that brings back rows the ledger holds already writes none of them again: each
stored row keeps its xmin (no new row version), on every write path: a small last page held
for the close (the nightly norm), long lookbacks written page by page (usage through a
temporary table, payments and refunds merged), and refunds walked newest first. A row whose
state moved is the one row written again, with its change recorded."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from ledger.popbill import PaymentForm, PopbillClient, RefundForm
from ledger.simulator import Simulator
from ledger.sync.service import sync_all
from ledger.sync.windows import SyncOptions
from tests.conftest import add_members, client_settings, small_config
from tests.sync.helpers import assert_ledger_equals_truth

MEMBERS = ["1234567890", "2208112345"]
TABLES = ("usages", "payments", "refunds")


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=20, usage_per_day=12, settle_after_polls=None)) as simulator:
        yield simulator


@pytest.fixture
def popbill(sim):
    with PopbillClient(client_settings(sim)) as client:
        yield client


@pytest.fixture
def ledger_db(clean_engine):
    add_members(clean_engine, MEMBERS)
    return clean_engine


def versions(engine) -> dict[tuple[str, int], str]:
    """(table, id) -> xmin: the transaction that wrote the row's current version."""
    with engine.connect() as conn:
        return {
            (table, row.id): row.xmin
            for table in TABLES
            for row in conn.execute(text(f"SELECT id, xmin::text AS xmin FROM {table}"))
        }


def sync(engine, client, sim, **options):
    results = sync_all(engine, client, today=sim.world.today(), options=SyncOptions(**options))
    assert all(r.status == "succeeded" for r in results), [(r.corp_num, r.kind, r.error) for r in results]
    return results


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="small-last-pages-held-for-the-close"),
        # Pages of 2 rows: the lookback is several pages, each written as a page of its own
        # (usage COPYed through the temporary table, payments merged), and so are the refunds
        # walked newest first, on a full pass.
        pytest.param({"per_page": 2, "refund_full_pass_days": 0}, id="long-lookbacks-page-by-page"),
    ],
)
def test_rows_read_again_unchanged_are_not_written_again(ledger_db, popbill, sim, options):
    for corp in MEMBERS:  # payments and refunds inside the lookback, besides the usage
        for _ in range(3):
            popbill.payment_request(corp, PaymentForm("담당", "a@b.kr", "010-1234-5678", "입금자", Decimal("55000")))
            popbill.refund(corp, RefundForm("담당", "02-123-4567", Decimal("100"), "국민", "1", "홍", "r"))
    sync(ledger_db, popbill, sim, **options)
    # Three identical payments a member: tied rows, and with pages of 2 the last of them alone on a
    # small last page fetched ahead while the page before is written. Each is stored, first time.
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)
    before = versions(ledger_db)
    assert {table for table, _ in before} == set(TABLES)

    again = sync(ledger_db, popbill, sim, **options)

    assert versions(ledger_db) == before
    assert sum(r.inserted + r.updated for r in again) == 0
    assert {r.kind for r in again if r.unchanged} == {"usage", "payments", "refunds"}  # rows were read again
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)


@pytest.mark.parametrize("options", [{}, {"per_page": 2}], ids=["held-for-the-close", "page-by-page"])
def test_a_payment_whose_state_moved_is_the_one_row_written_again(ledger_db, popbill, sim, options):
    corp = MEMBERS[0]
    code = popbill.payment_request(corp, PaymentForm("담당", "a@b.kr", "010-1234-5678", "입금자", Decimal("55000"))).settle_code
    sync(ledger_db, popbill, sim, **options)
    # Three identical payments a member: tied rows, and with pages of 2 the last of them alone on a
    # small last page fetched ahead while the page before is written. Each is stored, first time.
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)
    before = versions(ledger_db)
    sim.advance_days(1)
    sim.complete_payment(corp, code)

    again = sync(ledger_db, popbill, sim, **options)

    after = versions(ledger_db)
    rewritten = [key for key, xmin in before.items() if after[key] != xmin]
    new = [key for key in after if key not in before]  # the deposit's credit in the usage history
    with ledger_db.connect() as conn:
        ours = conn.execute(text("SELECT id FROM payments WHERE settle_cost = 55000")).scalar_one()
        changes = conn.execute(
            text("SELECT field FROM state_changes WHERE payment_id = :p ORDER BY field"), {"p": ours}
        ).scalars().all()  # fmt: skip
    assert rewritten == [("payments", ours)]
    assert changes == ["settle_state", "state_dt"]
    assert [(r.kind, r.updated) for r in again if r.updated] == [("payments", 1)]
    assert len(new) == sum(r.inserted for r in again) and {table for table, _ in new} <= {"usages"}
    assert_ledger_equals_truth(ledger_db, sim, MEMBERS)
