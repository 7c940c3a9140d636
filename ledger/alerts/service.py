"""Balance checks and the alerts they drive; stuck pending items; mutes; test notifications."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from decimal import Decimal

from sqlalchemy import Engine, select, text
from sqlalchemy.dialects.postgresql import insert

from ledger.alerts.models import PARTNER, Alert, AlertMute
from ledger.alerts.outbox import enqueue
from ledger.alerts.rules import Check, evaluate
from ledger.balances.models import BalanceSnapshot
from ledger.errors import UserInputError
from ledger.history.codes import load_codes
from ledger.members.models import Member
from ledger.popbill import PopbillClient, PopbillError
from ledger.settings import Settings

LOW_BALANCE, RUNWAY, STUCK = "low_balance", "runway", "stuck_pending"


@dataclasses.dataclass
class BalanceReading:
    subject: str
    corp_num: str
    member_id: int | None
    balance: Decimal | None
    threshold: Decimal
    daily_use: Decimal | None = None
    days_left: Decimal | None = None
    error: str | None = None
    alerts: list[str] = dataclasses.field(default_factory=list)


_USED_IN_WEEK = text(
    """
    SELECT coalesce(sum(tx_point), 0) FROM usages
    WHERE member_id = :member AND tx_dt >= :since AND NOT (tx_type = ANY(:credit_types))
    """
)


def _read(client: PopbillClient, subject: str, corp_num: str) -> tuple[Decimal | None, str | None]:
    try:
        if subject == PARTNER:
            return client.get_partner_balance(corp_num), None
        return client.get_balance(corp_num), None
    except PopbillError as exc:
        return None, str(exc)


def check_balances(engine: Engine, client: PopbillClient, settings: Settings, *, now: dt.datetime | None = None
                   ) -> list[BalanceReading]:  # fmt: skip
    """GetBalance for every active member and GetPartnerBalance for the partner, each kept as a
    snapshot and run through the low-balance and runway rules."""
    now = now or dt.datetime.now(dt.UTC)
    credit_types = sorted(load_codes(engine).credit_tx_types)
    h = 1 + settings.alert_hysteresis
    with engine.connect() as conn:
        members = conn.execute(
            select(Member.id, Member.corp_num, Member.low_balance_threshold).where(Member.active.is_(True))
            .order_by(Member.corp_num)
        ).all()  # fmt: skip
    readings = [
        BalanceReading(m.corp_num, m.corp_num, m.id, None, m.low_balance_threshold or settings.alert_threshold)
        for m in members
    ]
    partner_corp = settings.partner_corp_num or (members[0].corp_num if members else None)
    if partner_corp:
        readings.append(BalanceReading(PARTNER, partner_corp, None, None, settings.partner_threshold))
    for reading in readings:
        reading.balance, reading.error = _read(client, reading.subject, reading.corp_num)
        with engine.begin() as conn:
            if reading.balance is not None:
                conn.execute(
                    insert(BalanceSnapshot).values(
                        subject="partner" if reading.subject == PARTNER else "member", member_id=reading.member_id,
                        corp_num=reading.corp_num, balance=reading.balance, taken_at=now,
                    )
                )  # fmt: skip
            low = Check(
                reading.subject, LOW_BALANCE, reading.member_id,
                None if reading.balance is None else reading.balance < reading.threshold,
                reading.balance, reading.threshold, cleared=reading.balance is not None and reading.balance > reading.threshold * h,
                summary=f"balance {reading.balance} is below {reading.threshold}" if reading.balance is not None else "",
            )  # fmt: skip
            checks = [low]
            if reading.member_id is not None and settings.alert_runway_days > 0:
                checks.append(_runway(conn, reading, settings, now, credit_types, h))
            for check in checks:
                if evaluate(conn, check, settings, now):
                    reading.alerts.append(check.rule)
    return readings


def _runway(conn, reading: BalanceReading, settings: Settings, now: dt.datetime, credit_types, h) -> Check:
    """Alert when, at the last seven days' average daily use, the balance runs out in under N days."""
    limit = Decimal(settings.alert_runway_days)
    if reading.balance is None:
        return Check(reading.subject, RUNWAY, reading.member_id, None)
    used = conn.execute(
        _USED_IN_WEEK, {"member": reading.member_id, "since": now - dt.timedelta(days=7), "credit_types": credit_types}
    ).scalar()
    reading.daily_use = (Decimal(used or 0) / 7).quantize(Decimal("0.01"))
    if not reading.daily_use:
        return Check(reading.subject, RUNWAY, reading.member_id, False, cleared=True)
    days_left = (reading.balance / reading.daily_use).quantize(Decimal("0.1"))
    reading.days_left = days_left
    return Check(
        reading.subject, RUNWAY, reading.member_id, days_left < limit, days_left, limit, cleared=days_left > limit * h,
        summary=f"{days_left} days of points left at {reading.daily_use.quantize(Decimal('0.1'))} a day (limit {limit})",
    )  # fmt: skip


def review_stuck(engine: Engine, settings: Settings, *, now: dt.datetime | None = None) -> list[str]:
    """A 'stuck pending' alert for each item pending longer than the configured age, resolved
    once the item is final."""
    now = now or dt.datetime.now(dt.UTC)
    age = dt.timedelta(seconds=settings.pending_stuck_after)
    fired = []
    with engine.begin() as conn:
        items = conn.execute(
            text("SELECT t.kind, t.code, t.state, t.requested_at, t.member_id, m.corp_num FROM tracked_items t "
                 "JOIN members m ON m.id = t.member_id "
                 "WHERE t.state = 'pending' OR t.kind || ':' || t.code IN "
                 "(SELECT subject FROM alerts WHERE rule = :rule AND state <> 'ok')"),
            {"rule": STUCK},
        ).all()  # fmt: skip
        for item in items:
            subject = f"{item.kind}:{item.code}"
            holds = item.state == "pending" and now - item.requested_at > age
            days = Decimal((now - item.requested_at).total_seconds() / 86400).quantize(Decimal("0.1"))
            check = Check(subject, STUCK, item.member_id, holds, days, Decimal(settings.pending_stuck_after) / 86400,
                          cleared=item.state != "pending",
                          summary=f"{item.kind} {item.code} of {item.corp_num} pending for {days} days")  # fmt: skip
            if evaluate(conn, check, settings, now) == "firing":
                fired.append(subject)
    return fired


MAX_MUTE = dt.timedelta(days=366)  # longer is forgetting, not muting: deactivate the member instead


def parse_duration(text_value: str) -> dt.timedelta:
    match = re.fullmatch(r"\s*(\d{1,9})\s*([smhdw])\s*", text_value or "")
    if not match:
        raise UserInputError(f"--for: a duration such as 30m, 12h or 2d, got {text_value!r}")
    seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    if seconds == 0:
        raise UserInputError(f"--for: must be longer than zero, got {text_value!r}")
    if seconds > MAX_MUTE.total_seconds():  # compared as a number: a timedelta of it may overflow
        raise UserInputError(f"--for: at most {MAX_MUTE.days} days, got {text_value!r}")
    return dt.timedelta(seconds=seconds)


def mute(engine: Engine, subject: str, duration: dt.timedelta, *, now: dt.datetime | None = None) -> dt.datetime:
    until = (now or dt.datetime.now(dt.UTC)) + duration
    with engine.begin() as conn:
        conn.execute(
            insert(AlertMute).values(subject=subject, until=until)
            .on_conflict_do_update(index_elements=["subject"], set_={"until": until})
        )  # fmt: skip
    return until


def list_alerts(engine: Engine, *, firing_only: bool = False) -> list[dict]:
    query = select(Alert.subject, Alert.rule, Alert.state, Alert.value, Alert.threshold, Alert.fired_at,
                   Alert.last_notified_at, Alert.resolved_at, Alert.summary).order_by(Alert.subject, Alert.rule)  # fmt: skip
    if firing_only:
        query = query.where(Alert.state == "firing")
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def send_test(engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        enqueue(conn, settings, alert_id=None, kind="test", text="[TEST] ledger alert channels work", payload={})
