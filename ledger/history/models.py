"""History rows. Popbill gives them no id: identity is (member, row_key, occurrence).

row_key hashes the row's immutable fields (see ledger.history.identity); never settleState,
stateDT or state, which change while the row stays the same. occurrence numbers exact
repeats of a key (two identical deposit requests in the same second are two rows).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from ledger.db.base import Base, Timestamp
from ledger.members.models import Member  # noqa: F401 - the table member_id refers to: it types that column


class _HistoryRow:
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, sort_order=-4)
    row_key: Mapped[str] = mapped_column(Uuid(as_uuid=False), sort_order=-2)
    occurrence: Mapped[int] = mapped_column(SmallInteger, server_default="0", sort_order=-1)
    raw: Mapped[dict] = mapped_column(sort_order=10)
    first_seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now(), sort_order=11)
    last_seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now(), sort_order=12)

    @declared_attr
    def member_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("members.id", ondelete="CASCADE"), sort_order=-3)

    @declared_attr.directive
    def __table_args__(cls):
        return (
            UniqueConstraint("member_id", "row_key", "occurrence"),
            *cls.__extra_table_args__,
        )

    __extra_table_args__: tuple = ()


class Usage(_HistoryRow, Base):
    """GetUseHistory: one point transaction. txPoint is a magnitude; its sign follows from the chain."""

    __tablename__ = "usages"
    __extra_table_args__ = (Index("ix_usages_member_id_tx_dt", "member_id", "tx_dt"),)

    @declared_attr
    def member_id(cls) -> Mapped[int]:
        # No foreign key: a lookup of members for every row written cost PostgreSQL 30% of
        # its COPY time. Members are never deleted (a trigger refuses it; migration 0006).
        return mapped_column(sort_order=-3)

    tx_dt: Mapped[dt.datetime]
    item_code: Mapped[int | None]
    tx_type: Mapped[int | None]
    tx_point: Mapped[Decimal | None]
    balance: Mapped[Decimal | None]
    service_user_id: Mapped[str | None]
    user_id: Mapped[str | None]
    user_name: Mapped[str | None]


class Payment(_HistoryRow, Base):
    """GetPaymentHistory: one deposit (충전) request. settle_state and state_dt change in place."""

    __tablename__ = "payments"
    __extra_table_args__ = (Index("ix_payments_member_id_reg_dt", "member_id", "reg_dt"),)

    reg_dt: Mapped[dt.datetime]
    state_dt: Mapped[dt.datetime | None]
    settle_state: Mapped[int | None]
    product_type: Mapped[str | None]
    product_name: Mapped[str | None]
    settle_type: Mapped[str | None]
    settler_name: Mapped[str | None]
    settler_email: Mapped[str | None]
    settle_cost: Mapped[Decimal | None]
    settle_point: Mapped[Decimal | None]


class Refund(_HistoryRow, Base):
    """GetRefundHistory: one refund request. state changes in place."""

    __tablename__ = "refunds"
    __extra_table_args__ = (Index("ix_refunds_member_id_req_dt", "member_id", "req_dt"),)

    req_dt: Mapped[dt.datetime]
    state: Mapped[int | None]
    request_point: Mapped[Decimal | None]
    account_bank: Mapped[str | None]
    account_num: Mapped[str | None]
    account_name: Mapped[str | None]
    reason: Mapped[str | None]


class StateChange(Base):
    """Every change of a mutable field, so an accountant can see when a deposit became complete."""

    __tablename__ = "state_changes"
    __table_args__ = (
        CheckConstraint("(payment_id IS NULL) <> (refund_id IS NULL)", name="one_subject"),
        Index("ix_state_changes_payment_id", "payment_id"),
        Index("ix_state_changes_refund_id", "refund_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str | None]
    new_value: Mapped[str | None]
    seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())


class TxType(Base):
    """What each raw txType of the use history means. The sources do not enumerate them, so
    this table (seeded with the simulator's codes) is where a partner corrects them; the
    views and the Python code both read it (ledger.history.codes). direction: +1 credit, -1 debit."""

    __tablename__ = "tx_types"
    __table_args__ = (
        CheckConstraint("direction IN (-1, 1)", name="direction_sign"),
        CheckConstraint("category IN ('charge', 'bonus', 'use', 'refund', 'adjust')", name="category_known"),
        {"info": {"reference_data": True}},  # seeded by its migration
    )

    code: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    direction: Mapped[int] = mapped_column(SmallInteger)
    category: Mapped[str] = mapped_column(String(10))
    name_ko: Mapped[str] = mapped_column(String(40))
    name_en: Mapped[str] = mapped_column(String(40))


class StateCode(Base):
    """What each raw settleState (kind 'settle') and refund state (kind 'refund') means:
    pending, done or cancelled. Seeded with the simulator's codes; correct it here. The
    poller, the sync, reconciliation and the views all read this one table."""

    __tablename__ = "state_codes"
    __table_args__ = (
        CheckConstraint("kind IN ('settle', 'refund')", name="kind_known"),
        CheckConstraint("meaning IN ('pending', 'done', 'cancelled')", name="meaning_known"),
        {"info": {"reference_data": True}},  # seeded by its migration
    )

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    code: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    meaning: Mapped[str] = mapped_column(String(10))
    name_ko: Mapped[str] = mapped_column(String(40))
    name_en: Mapped[str] = mapped_column(String(40))


class ItemCode(Base):
    """What each itemCode of the use history is: Popbill's own service codes, the ones the
    official SDKs request as token scopes. Seeded by migration 0004; a partner corrects or adds
    a row with SQL. Statements, exports and views read it; a code missing here shows as
    '알 수 없는 서비스 (NNN)', never as a guess."""

    __tablename__ = "item_codes"
    __table_args__ = ({"info": {"reference_data": True}},)

    code: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name_ko: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(60))


class QuarantinedRow(Base):
    """A history row Popbill sent that failed ledger.history.screening: never ledger data,
    never blocking the member's other rows. Seen again, the same row (same payload) only
    moves last_seen_at; reconciliation reports each one until someone deletes it."""

    __tablename__ = "quarantined_rows"
    __table_args__ = (
        UniqueConstraint("member_id", "kind", "fingerprint"),
        CheckConstraint("kind IN ('payments', 'usage', 'refunds')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    fingerprint: Mapped[str] = mapped_column(Uuid(as_uuid=False))  # hash of the whole payload
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)  # the row as JSON text (NaN kept), cut to PAYLOAD_CHARS
    payload_chars: Mapped[int]  # its length before cutting
    times_seen: Mapped[int] = mapped_column(server_default="1")
    first_seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    last_seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
