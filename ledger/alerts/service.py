"""Balance checks and the alerts they drive; stuck pending items; mutes; test notifications."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.dialects.postgresql import insert

from ledger.alerts import alertmanager, grouping
from ledger.alerts.batch import evaluate_many, evaluate_quiet
from ledger.alerts.models import PARTNER, Alert, AlertSilence, Notification
from ledger.alerts.outbox import enqueue
from ledger.alerts.rules import Check, Event, evaluate
from ledger.errors import UserInputError
from ledger.history.codes import load_codes
from ledger.members.models import Member
from ledger.metrics import process as process_metrics
from ledger.popbill import PopbillClient, PopbillError
from ledger.popbill.errors import (
    BusinessError,
    InvalidRequestError,
    MalformedAnswerError,
    RateLimitError,
    ServerError,
    TransportError,
    describe,
)
from ledger.settings import Settings

LOW_BALANCE, RUNWAY, STUCK = "low_balance", "runway", "stuck_pending"
UNREACHABLE, BEAT_DOWN, SYNC_LATE = "popbill_unreachable", "beat_down", "nightly_sync_late"
RULES = (LOW_BALANCE, RUNWAY, STUCK, UNREACHABLE, BEAT_DOWN, SYNC_LATE)
POPBILL = "popbill"  # the subject of the unreachable alert
# Members whose snapshots and quiet alert moves one transaction writes: bounded statements and transactions.
MEMBERS_PER_BATCH = 2000
log = logging.getLogger(__name__)


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
    unreachable: bool = False  # the error says Popbill could not be reached, not that the member is wrong
    answered: bool = False  # Popbill answered (a balance or a refusal); False when nothing was sent or heard
    alerts: list[str] = dataclasses.field(default_factory=list)


# What each member of the check used in the last seven days, in one statement.
_USED_IN_WEEK = text(
    """
    SELECT member_id, coalesce(sum(abs(tx_point)), 0) AS used FROM usages  -- abs: txPoint may arrive signed or not
    WHERE member_id = ANY(:members) AND tx_dt >= :since AND NOT (tx_type = ANY(:credit_types))
    GROUP BY member_id
    """
)

_SNAPSHOTS = text(
    """
    INSERT INTO balance_snapshots (subject, member_id, corp_num, balance, taken_at)
    SELECT s.subject, s.member_id, s.corp_num, s.balance, :now
    FROM unnest(CAST(:subjects AS text[]), CAST(:members AS integer[]), CAST(:corps AS text[]),
                CAST(:balances AS numeric[])) AS s(subject, member_id, corp_num, balance)
    """
)


def _read(client: PopbillClient, reading: BalanceReading) -> None:
    """One balance, never raising: a bad answer is this reading's error, the others go on."""
    call = "GetPartnerBalance" if reading.subject == PARTNER else "GetBalance"
    try:
        if reading.subject == PARTNER:
            reading.balance = client.get_partner_balance(reading.corp_num)
        else:
            reading.balance = client.get_balance(reading.corp_num)
        reading.answered = True
    except PopbillError as exc:
        reading.error = describe(exc)
        # Popbill could not be reached (no answer, 5xx, 429), as against this member's answer being wrong.
        reading.unreachable = isinstance(exc, (TransportError, ServerError, RateLimitError)) and not isinstance(
            exc, MalformedAnswerError
        )
        # Popbill answered (a refusal, or an answer outside its shapes); not when nothing was sent or heard.
        reading.answered = isinstance(exc, MalformedAnswerError) or not isinstance(
            exc, (TransportError, InvalidRequestError)
        )
        if isinstance(exc, MalformedAnswerError) or (isinstance(exc, BusinessError) and exc.status == 200):
            process_metrics.DOUBTFUL_ANSWERS.labels(call).inc()
    except Exception as exc:  # a bug of ours: this member's problem too, never the others'
        log.exception("%s of %s failed", call, reading.corp_num)
        reading.error = f"{call}: {type(exc).__name__}: {exc}"
    if reading.error:
        log.warning("%s of %s: %s", call, reading.corp_num, reading.error)


def _read_all(client: PopbillClient, readings: list[BalanceReading], threads: int) -> None:
    """_read for every reading, `threads` at a time: each thread takes the next reading when it
    is done with one (a slow member holds up no other), and none waits on a future per member."""
    left, lock = iter(readings), threading.Lock()

    def work() -> None:
        while True:
            with lock:
                reading = next(left, None)
            if reading is None:
                return
            _read(client, reading)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="balance") as pool:
        for done in [pool.submit(work) for _ in range(min(threads, len(readings)))]:
            done.result()


def _low_balance(reading: BalanceReading, h: Decimal) -> Check:
    balance, threshold = reading.balance, reading.threshold
    if balance is None:
        return Check(reading.subject, LOW_BALANCE, reading.member_id, None, summary=reading.error or "")
    holds = balance < threshold
    # Said so that it is true in every state: a resolved alert must not say "is below".
    summary = f"balance {balance} is below {threshold}" if holds else f"balance {balance} is no longer below {threshold}"
    return Check(reading.subject, LOW_BALANCE, reading.member_id, holds, balance, threshold,
                 cleared=balance > threshold * h, summary=summary)  # fmt: skip


def popbill_unreachable(readings: list[BalanceReading]) -> bool:
    """Most reads failed for want of Popbill itself (connection, 5xx, 429), not per member."""
    failed = sum(1 for r in readings if r.unreachable)
    return failed > 0 and failed * 2 >= len(readings)


def check_balances(engine: Engine, client: PopbillClient, settings: Settings, *, now: dt.datetime | None = None
                   ) -> list[BalanceReading]:  # fmt: skip
    """GetBalance for every active member and GetPartnerBalance for the partner, each kept as a
    snapshot and run through the low-balance and runway rules. The run sends at most one
    notification per channel and rule. When Popbill cannot be reached, one 'popbill_unreachable'
    alert fires and the members' 'unknown' states notify nobody (inhibition)."""
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
    # The calls first, all at once: the client's gate keeps POPBILL_MAX_CONCURRENCY of them in
    # flight and makes every thread wait out a 429 together, as in the sync.
    _read_all(client, readings, settings.max_concurrency)
    unreachable = popbill_unreachable(readings)
    # What the reads found, a batch of members a transaction: snapshots, then the alerts whose
    # moves notify nobody. The moves that notify are made last, in the transaction that
    # enqueues their notifications (ledger.alerts.batch).
    notifying: list[tuple[BalanceReading, Check]] = []
    for start in range(0, len(readings), MEMBERS_PER_BATCH):
        batch = readings[start : start + MEMBERS_PER_BATCH]
        with engine.begin() as conn:
            _keep_snapshots(conn, batch, now)
            used = _used_in_week(conn, batch, settings, now, credit_types)
            checks = [(reading, check) for reading in batch for check in _checks(reading, used, settings, h)]
            notifying += [checks[i] for i in evaluate_quiet(conn, [check for _, check in checks], settings, now)]
    events: list[Event] = []
    with engine.begin() as conn:
        moved = evaluate_many(conn, [check for _, check in notifying], settings, now)
        for (reading, check), event in zip(notifying, moved, strict=True):
            if event:
                reading.alerts.append(check.rule)
                if not (unreachable and event.kind == "unknown"):
                    events.append(event)
        event = evaluate(conn, _outage(readings, unreachable), settings, now)
        if event:
            events.append(event)
        grouping.notify(conn, settings, events, now)
    return readings


def _keep_snapshots(conn: Connection, readings: list[BalanceReading], now: dt.datetime) -> None:
    """The balances read, in one statement (an executemany would be one a member)."""
    read = [r for r in readings if r.balance is not None]
    if read:
        conn.execute(_SNAPSHOTS, {"subjects": ["partner" if r.subject == PARTNER else "member" for r in read],
                                  "members": [r.member_id for r in read], "corps": [r.corp_num for r in read],
                                  "balances": [r.balance for r in read], "now": now})  # fmt: skip


def _used_in_week(conn: Connection, readings: list[BalanceReading], settings: Settings, now: dt.datetime,
                  credit_types: list[str]) -> dict[int, Decimal]:  # fmt: skip
    if settings.alert_runway_days <= 0:
        return {}
    read = [r.member_id for r in readings if r.member_id is not None and r.balance is not None]
    if not read:
        return {}
    params = {"members": read, "since": now - dt.timedelta(days=7), "credit_types": credit_types}
    return dict(conn.execute(_USED_IN_WEEK, params).all())


def _checks(reading: BalanceReading, used: dict[int, Decimal], settings: Settings, h: Decimal) -> list[Check]:
    checks = [_low_balance(reading, h)]
    if reading.member_id is not None and settings.alert_runway_days > 0:
        checks.append(_runway(reading, used.get(reading.member_id), settings, h))
    return checks


def _outage(readings: list[BalanceReading], unreachable: bool) -> Check:
    """Whether Popbill can be reached, as the reads found it. When none reached Popbill (each
    refused before sending, say for a configuration error) that is not known: never "answers"."""
    failed = [r for r in readings if r.unreachable]
    worked = sum(1 for r in readings if r.balance is not None)
    total = len(readings)
    if unreachable:
        holds, summary = True, f"{len(failed)} of {total} balance reads failed: {failed[0].error}"
    elif readings and not any(r.answered for r in readings):
        holds, summary = None, f"no balance read reached Popbill: {readings[0].error}"
    else:
        holds, summary = False, f"Popbill answers again ({worked} of {total} balance reads worked)"
        refused = next((r for r in readings if r.error), None)
        if refused is not None:
            summary += f"; {total - worked} failed: {refused.error}"
    return Check(POPBILL, UNREACHABLE, None, holds, Decimal(len(failed)), Decimal(total), cleared=True, summary=summary)


def _runway(reading: BalanceReading, used: Decimal | None, settings: Settings, h) -> Check:
    """Alert when, at the last seven days' average daily use, the balance runs out in under N days."""
    limit = Decimal(settings.alert_runway_days)
    if reading.balance is None:
        return Check(reading.subject, RUNWAY, reading.member_id, None, summary=reading.error or "")
    reading.daily_use = (Decimal(used or 0) / 7).quantize(Decimal("0.01"))
    if not reading.daily_use:
        return Check(reading.subject, RUNWAY, reading.member_id, False, cleared=True,
                     summary="no points used in the last 7 days")  # fmt: skip
    # A balance is never negative once checked (ledger.popbill.models); nor, then, a runway.
    days_left = (max(reading.balance, Decimal(0)) / reading.daily_use).quantize(Decimal("0.1"))
    reading.days_left = days_left
    holds = days_left < limit
    rate = reading.daily_use.quantize(Decimal("0.1"))
    summary = (f"{days_left} days of points left at {rate} a day (limit {limit})" if holds
               else f"{days_left} days of points left at {rate} a day, no longer under the limit of {limit}")  # fmt: skip
    return Check(reading.subject, RUNWAY, reading.member_id, holds, days_left, limit, cleared=days_left > limit * h,
                 summary=summary)  # fmt: skip


_STUCK_CANDIDATES = text(
    """
    SELECT t.kind, coalesce(t.code, 'item-' || t.id) AS code, t.state, t.requested_at, t.member_id, m.corp_num,
           t.doubtful_polls, t.last_doubt
    FROM tracked_items t JOIN members m ON m.id = t.member_id
    WHERE t.state = 'pending' OR (t.state IN ('sending', 'unknown') AND t.doubtful_polls >= :doubts)
       OR t.kind || ':' || coalesce(t.code, 'item-' || t.id) IN (SELECT subject FROM alerts WHERE rule = :rule AND state <> 'ok')
    """
)


def review_stuck(engine: Engine, settings: Settings, *, now: dt.datetime | None = None) -> list[str]:
    """A 'stuck pending' alert for each item pending longer than the configured age, or whose
    last LEDGER_PENDING_DOUBT_LIMIT answers in a row were doubt (it then says what Popbill
    answered); resolved once the item is final, or answered clearly again in time."""
    now = now or dt.datetime.now(dt.UTC)
    age = dt.timedelta(seconds=settings.pending_stuck_after)
    with engine.begin() as conn:
        items = conn.execute(_STUCK_CANDIDATES, {"rule": STUCK, "doubts": settings.pending_doubt_limit}).all()
        checks = []
        for item in items:
            subject = f"{item.kind}:{item.code}"
            waiting = item.state in ("pending", "sending", "unknown")
            old = item.state == "pending" and now - item.requested_at > age
            doubted = waiting and item.doubtful_polls >= settings.pending_doubt_limit
            days = Decimal((now - item.requested_at).total_seconds() / 86400).quantize(Decimal("0.1"))
            if doubted:
                summary = (f"{item.kind} {item.code} of {item.corp_num} is still {item.state}: the last "
                           f"{item.doubtful_polls} answers about it were not clear; the last: {item.last_doubt}")  # fmt: skip
            elif waiting:
                summary = f"{item.kind} {item.code} of {item.corp_num} {item.state} for {days} days"
            else:
                summary = f"{item.kind} {item.code} of {item.corp_num} is no longer pending ({item.state})"
            check = Check(subject, STUCK, item.member_id, old or doubted, days,
                          Decimal(settings.pending_stuck_after) / 86400, cleared=not waiting or not (old or doubted),
                          summary=summary)  # fmt: skip
            checks.append(check)
        events = [event for event in evaluate_many(conn, checks, settings, now) if event]
        fired = [event.subject for event in events if event.kind == "firing"]
        grouping.notify(conn, settings, events, now)
    return fired


MAX_SILENCE = dt.timedelta(days=366)


def parse_duration(text_value: str) -> dt.timedelta:
    """A silence's length: more than nothing, at most a year."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*([smhdw])\s*", text_value or "")
    if not match:
        raise UserInputError(f"--for: a duration such as 30m, 12h or 2d, got {text_value!r}")
    seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    if seconds <= 0:
        raise UserInputError(f"--for: from 1s to a year (366d): must be longer than zero, got {text_value!r}")
    if seconds > MAX_SILENCE.total_seconds():  # compared as a number: a timedelta of it may overflow
        raise UserInputError(f"--for: from 1s to a year (366d): at most 366 days, got {text_value!r}")
    return dt.timedelta(seconds=seconds)


def silence(
    engine: Engine,
    *,
    subject: str | None,
    rule: str | None,
    duration: dt.timedelta,
    comment: str,
    created_by: str,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> AlertSilence:
    """Hold back the notifications of a member's (or the partner's) alerts, of a rule, or of both.
    With Alertmanager configured, a silence matching the same is made there first (with the
    comment and author), so an Alertmanager that cannot be reached leaves nothing half done."""
    if subject is None and rule is None:
        raise UserInputError("a silence needs a member (CORP_NUM or 'partner') or --rule, or both")
    if rule is not None and rule not in RULES:
        raise UserInputError(f"--rule: one of {', '.join(RULES)}, got {rule!r}")
    if not comment.strip():
        raise UserInputError("--comment: say why (it is shown with the silence)")
    if not dt.timedelta(0) < duration <= MAX_SILENCE:
        raise UserInputError("--for: from 1s to a year (366d)")
    now = now or dt.datetime.now(dt.UTC)
    if subject not in (None, PARTNER):
        with engine.connect() as conn:
            known = conn.execute(select(Member.id).where(Member.corp_num == subject)).first()
        if known is None:
            raise UserInputError(f"CORP_NUM: {subject} is not a member (see `ledger members list`)")
    remote_id = None
    if settings is not None and settings.alertmanager_url:
        remote_id = alertmanager.create_silence(settings, subject=subject, rule=rule, starts_at=now,
                                                ends_at=now + duration, comment=comment.strip(),
                                                created_by=created_by[:100])  # fmt: skip
    try:
        with engine.begin() as conn:
            row = conn.execute(
                insert(AlertSilence).values(subject=subject, rule=rule, comment=comment.strip(),
                                            created_by=created_by[:100], starts_at=now, ends_at=now + duration,
                                            alertmanager_silence_id=remote_id)
                .returning(*AlertSilence.__table__.c)
            ).one()  # fmt: skip
    except Exception:
        if remote_id:
            alertmanager.expire_silence(settings, remote_id)
        raise
    return row


def list_silences(engine: Engine, *, include_ended: bool = False, now: dt.datetime | None = None) -> list[dict]:
    now = now or dt.datetime.now(dt.UTC)
    query = select(AlertSilence.id, AlertSilence.subject, AlertSilence.rule, AlertSilence.starts_at,
                   AlertSilence.ends_at, AlertSilence.created_by, AlertSilence.comment,
                   AlertSilence.alertmanager_silence_id).order_by(AlertSilence.id)  # fmt: skip
    if not include_ended:
        query = query.where(AlertSilence.ends_at > now)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def unsilence(engine: Engine, silence_id: int, *, settings: Settings | None = None) -> None:
    """End a silence now, and the Alertmanager silence made with it (first: when Alertmanager
    cannot be reached the ledger's silence stays, and the command can be run again)."""
    with engine.connect() as conn:
        remote_id = conn.execute(
            select(AlertSilence.alertmanager_silence_id).where(AlertSilence.id == silence_id)
        ).first()  # fmt: skip
    if remote_id is None:
        raise UserInputError(f"ID: no silence {silence_id} (see `ledger alerts mutes`)")
    if remote_id[0]:
        if settings is None or not settings.alertmanager_url:
            raise UserInputError(f"ID: silence {silence_id} is also in Alertmanager, and LEDGER_ALERTMANAGER_URL "
                                 "is not set: set it to end both")  # fmt: skip
        alertmanager.expire_silence(settings, remote_id[0])
    with engine.begin() as conn:
        conn.execute(AlertSilence.__table__.delete().where(AlertSilence.id == silence_id))


def list_outbox(engine: Engine, *, limit: int = 50, status: str | None = None) -> list[dict]:
    """The latest notifications, with why a failed one failed and when it is tried again."""
    query = (
        select(Notification.id, Notification.key, Notification.created_at, Notification.channel, Notification.rule,
               Notification.kind, Notification.status, Notification.attempts, Notification.next_attempt_at,
               Notification.sent_at, Notification.last_error, Notification.text)
        .order_by(Notification.id.desc()).limit(limit)
    )  # fmt: skip
    if status:
        query = query.where(Notification.status == status)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["key"] = str(row["key"])
        row["text"] = row["text"].splitlines()[0]
        if row["status"] == "sent":
            row["next_attempt_at"] = None
    return rows


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
