"""sync_member against a hostile server: what upstream sends is checked before it becomes
ledger data. Bad rows go to quarantine and reconciliation, the member's other rows are
written, repeated pages are refused, and NUL or control characters never lose a row."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.reconcile.service import reconcile
from ledger.settings import Settings
from ledger.sync.service import sync_member
from ledger.sync.windows import SyncOptions
from tests.conftest import MEMBER
from tests.hostile import HostileServer, Huge, Raw, page, payment_row, refund_row, usage_row
from tests.sync.helpers import canonical, stored_raw

TODAY = dt.date(2026, 11, 20)
PATHS = {"usage": "/UseHistory", "payments": "/PaymentHistory", "refunds": "/RefundHistory"}


@pytest.fixture
def ledger_db(clean_engine):
    with Session(clean_engine) as session:
        add_member(session, MemberInput(MEMBER, name="회원"))
        session.commit()
    return clean_engine


class Upstream:
    """The hostile server with one scripted answer per (path, page)."""

    def __init__(self, **env: str) -> None:
        self.pages: dict[str, list] = {}
        self.server = HostileServer(self._answer)
        env = {"POPBILL_API_URL": self.server.url, "LINKHUB_AUTH_URL": self.server.url,
               "POPBILL_RETRY_BACKOFF": "0.01", "POPBILL_RETRY_ATTEMPTS": "2", **env}  # fmt: skip
        self.settings = Settings.from_env(env)
        self.client = PopbillClient(self.settings)

    def _answer(self, path: str, page_no: int):
        pages = self.pages.get(path) or [page([])]
        return pages[min(page_no, len(pages)) - 1]

    def serve(self, kind: str, *pages) -> None:
        self.pages[PATHS[kind]] = list(pages)

    def close(self) -> None:
        self.client.close()
        self.server.close()


@pytest.fixture
def upstream():
    up = Upstream()
    yield up
    up.close()


def sync(engine, upstream: Upstream, kind: str, per_page: int = 1000):
    return sync_member(
        engine, upstream.client, MEMBER, kind, today=TODAY, since=TODAY, options=SyncOptions(per_page=per_page)
    )


def quarantined(engine, kind: str) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT reason, payload, times_seen FROM quarantined_rows WHERE kind = :k ORDER BY id"), {"k": kind}
        ).all()


BAD_USAGE = [
    (usage_row(100, TODAY, txPoint=float("nan")), "txPoint"),  # the JSON literal NaN
    (usage_row(101, TODAY, txPoint="NaN"), "txPoint"),
    (usage_row(102, TODAY, balance="Infinity"), "balance"),
    (usage_row(103, TODAY, txPoint=float("-inf")), "txPoint"),
    (usage_row(104, TODAY, balance="-500"), "balance"),
    (usage_row(105, TODAY, txPoint="1e-300"), "txPoint"),
    (usage_row(106, TODAY, txPoint="99999999999999999999"), "txPoint"),
    (usage_row(107, TODAY, txDT="99991231235959"), "txDT"),
    (usage_row(108, TODAY, txDT="00010101000000"), "txDT"),
    (usage_row(109, TODAY, txDT="20261345000000"), "txDT"),
    (usage_row(110, TODAY, txDT=None), "txDT"),
    (usage_row(111, TODAY, itemCode=-3), "itemCode"),
    (usage_row(112, TODAY, itemCode="12345678901234567890"), "itemCode"),
    (usage_row(113, TODAY, txType="abc"), "txType"),
    (usage_row(114, TODAY, userName="x" * 5000), "userName"),
    ("not a row", "not a JSON object"),
]


def test_bad_usage_rows_are_quarantined_and_the_rest_is_stored(ledger_db, upstream):
    good = [usage_row(n, TODAY) for n in range(6)]
    upstream.serve("usage", page(good[:3] + [row for row, _ in BAD_USAGE] + good[3:]))

    result = sync(ledger_db, upstream, "usage")

    assert result.status == "succeeded", result.error  # the bad rows never block the member
    assert canonical(stored_raw(ledger_db, MEMBER, "usage")) == canonical(good)
    kept = quarantined(ledger_db, "usage")
    assert len(kept) == len(BAD_USAGE)
    for (reason, _, _), (_, field) in zip(kept, BAD_USAGE, strict=True):
        assert reason.startswith(field), (reason, field)  # the reason names the field
    assert "NaN" in kept[0].payload  # the raw payload as sent
    assert result.quarantined == len(BAD_USAGE)

    again = sync(ledger_db, upstream, "usage")
    assert again.status == "succeeded" and again.inserted == 0
    assert [times for _, _, times in quarantined(ledger_db, "usage")] == [2] * len(BAD_USAGE)

    [report] = reconcile(ledger_db, upstream.settings, corp_nums=[MEMBER])
    assert report.open_by_check["quarantined_row"] == len(BAD_USAGE)
    assert not report.reconciled


def test_bad_payment_and_refund_rows_are_quarantined(ledger_db, upstream):
    payments_good = [payment_row(n, TODAY) for n in range(3)]
    payments_bad = [
        payment_row(10, TODAY, settlePoint="-10000"),
        payment_row(11, TODAY, settleCost="Infinity"),
        payment_row(12, TODAY, regDT="00010101000000"),
        payment_row(13, TODAY, stateDT="99990101000000"),
        payment_row(14, TODAY, settleState="pending!"),
    ]
    refunds_good = [refund_row(n, TODAY) for n in range(2)]
    refunds_bad = [refund_row(10, TODAY, requestPoint=float("nan")), refund_row(11, TODAY, state=123456)]
    upstream.serve("payments", page(payments_bad[:2] + payments_good + payments_bad[2:]))
    upstream.serve("refunds", page(refunds_good + refunds_bad))

    for kind, good, bad in (("payments", payments_good, payments_bad), ("refunds", refunds_good, refunds_bad)):
        result = sync(ledger_db, upstream, kind)
        assert result.status == "succeeded", result.error
        assert canonical(stored_raw(ledger_db, MEMBER, kind)) == canonical(good)
        assert len(quarantined(ledger_db, kind)) == len(bad)


def test_nul_and_control_characters_never_lose_the_row(ledger_db, upstream):
    odd = "가\x00나\x01\x1f\x7f\u0085"
    upstream.serve("usage", page([usage_row(1, TODAY, userName=odd, serviceUserID="\ud800x"), usage_row(2, TODAY)]))
    upstream.serve("payments", page([payment_row(1, TODAY, settlerName=odd)]))
    upstream.serve("refunds", page([refund_row(1, TODAY, reason=odd)]))

    for kind in ("usage", "payments", "refunds"):
        first, second = sync(ledger_db, upstream, kind), sync(ledger_db, upstream, kind)
        assert first.status == second.status == "succeeded", (first.error, second.error)
        assert second.inserted == 0 and second.unchanged == first.inserted  # the same row, not a new one
    with ledger_db.connect() as conn:
        names = conn.execute(text("SELECT user_name, service_user_id, raw->>'userName' FROM usages ORDER BY id")).all()
        settler = conn.execute(text("SELECT settler_name FROM payments")).scalar_one()
        reason = conn.execute(text("SELECT reason FROM refunds")).scalar_one()
    repaired = "가\ufffd나\x01\x1f\x7f\u0085"  # NUL becomes U+FFFD; other control characters are kept
    assert names[0] == (repaired, "\ufffdx", repaired)
    assert settler == reason == repaired
    assert quarantined(ledger_db, "usage") == []


def test_raw_control_bytes_and_invalid_utf8_never_lose_the_page(ledger_db, upstream):
    body = json.dumps(page([usage_row(1, TODAY, userName="@"), usage_row(2, TODAY)]).data).encode()
    upstream.serve("usage", Raw(body.replace(b"@", b"a\x01\x1fb\xff\xfec")))  # unescaped, as no JSON encoder would

    first, second = sync(ledger_db, upstream, "usage"), sync(ledger_db, upstream, "usage")

    assert first.status == second.status == "succeeded", (first.error, second.error)
    assert (first.inserted, second.inserted) == (2, 0)
    with ledger_db.connect() as conn:
        assert (
            conn.execute(text("SELECT user_name FROM usages ORDER BY id")).scalars().first()
            == "a\x01\x1fb\ufffd\ufffdc"
        )


def test_the_same_rows_served_on_every_page_are_stored_once(ledger_db, upstream):
    rows = [usage_row(n, TODAY) for n in range(100)]
    upstream.serve("usage", page(rows, total=300, per_page=100))  # page 1 served for pages 1, 2 and 3

    result = sync(ledger_db, upstream, "usage", per_page=100)

    assert result.status == "failed" and "repeats page 1" in result.error
    assert canonical(stored_raw(ledger_db, MEMBER, "usage")) == canonical(rows)  # page 1, once


def test_an_oversized_answer_stores_nothing(ledger_db):
    upstream = Upstream(POPBILL_MAX_RESPONSE_BYTES=str(2**20))
    try:
        upstream.serve("usage", Huge(8 * 2**20))
        result = sync(ledger_db, upstream, "usage")
    finally:
        upstream.close()
    assert stored_raw(ledger_db, MEMBER, "usage") == []
    assert result.status == "failed" and "over the limit" in result.error


def test_ledger_sync_says_how_many_rows_were_quarantined(ledger_db, upstream):
    from tests.test_cli_ledger import ledger

    upstream.serve("usage", page([usage_row(1, TODAY), usage_row(2, TODAY, balance="NaN")]))
    env = {"POPBILL_API_URL": upstream.server.url, "LINKHUB_AUTH_URL": upstream.server.url}
    done = ledger("sync", "--member", MEMBER, "--kind", "usage", "--since", TODAY.isoformat(), env_extra=env)
    assert done.returncode == 0, done.stderr
    assert f"{MEMBER} usage: 1 rows refused, kept in quarantined_rows" in done.stdout
    assert len(stored_raw(ledger_db, MEMBER, "usage")) == 1
