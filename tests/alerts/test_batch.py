"""Many checks at once (ledger.alerts.batch) move the alerts and make the events exactly as
rules.evaluate does one check at a time, over a matrix of histories: every sequence of four
outcomes (holds, cleared, inside the hysteresis band, check failed) for both rules, alerts
made on the way, a check repeated in one run, silences by member, by member and rule, by rule
(starting and ending between runs), expired and not yet started."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from ledger.alerts import batch, service
from ledger.alerts.models import Alert, AlertSilence, Notification
from ledger.alerts.rules import Check, evaluate
from ledger.members.models import Member
from ledger.popbill import PopbillClient
from ledger.settings import Settings
from ledger.simulator import Simulator
from tests.conftest import client_settings, small_config

T0 = dt.datetime(2026, 11, 25, 0, 0, tzinfo=dt.UTC)
# The runs: a first, a second (K = 2 fires), a third past the repeat interval, a fourth inside it.
RUNS = (T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=5, minutes=30), T0 + dt.timedelta(hours=6))
OUTCOMES = "HCBU"  # holds, not holding and cleared, not holding inside the band, the check failed
HISTORIES = list(itertools.product(OUTCOMES, repeat=len(RUNS)))
SUBJECTS = [f"{5_000_000_000 + n:010d}" for n in range(len(HISTORIES) // 2)]
SETTINGS = dataclasses.replace(Settings(), alert_consecutive=2, alert_repeat_seconds=4 * 3600)


def _silences() -> list[dict]:
    day = dt.timedelta(days=1)
    rows = [{"subject": None, "rule": "runway", "starts_at": T0 + dt.timedelta(minutes=30),
             "ends_at": T0 + dt.timedelta(hours=5, minutes=45)}]  # fmt: skip
    for n, subject in enumerate(SUBJECTS):
        if n % 8 == 1:
            rows.append({"subject": subject, "rule": None, "starts_at": T0 - day, "ends_at": T0 + day})
        elif n % 8 == 2:
            rows.append({"subject": subject, "rule": "low_balance", "starts_at": T0 - day, "ends_at": T0 + day})
        elif n % 8 == 3:  # ended before the first run
            rows.append({"subject": subject, "rule": None, "starts_at": T0 - day, "ends_at": T0})
        elif n % 8 == 4:  # starts after the last
            rows.append({"subject": subject, "rule": None, "starts_at": T0 + day, "ends_at": T0 + 2 * day})
    return [{**row, "comment": "test", "created_by": "test"} for row in rows]


def _check(subject: str, rule: str, member_id: int | None, outcome: str, run: int) -> Check:
    if outcome == "U":
        return Check(subject, rule, member_id, None, summary=f"run {run}: the read failed")
    value = {"H": Decimal("5"), "C": Decimal("50"), "B": Decimal("10.5")}[outcome]
    return Check(subject, rule, member_id, outcome == "H", value, Decimal("10"), cleared=outcome == "C",
                 summary=f"run {run}: {value} against 10")  # fmt: skip


def _runs(members: dict[str, int]) -> list[list[Check]]:
    """Each subject's low balance follows one history, its runway another (all of them once);
    the fifth subject's alerts are made only at the second run; the first subject's low
    balance is checked twice in each run; the partner (no member) follows a history too."""
    runs = []
    for run in range(len(RUNS)):
        checks = []
        for n, subject in enumerate(SUBJECTS):
            if n == 5 and run == 0:
                continue
            low, runway = HISTORIES[n], HISTORIES[len(HISTORIES) - 1 - n]
            checks.append(_check(subject, "low_balance", members[subject], low[run], run))
            checks.append(_check(subject, "runway", members[subject], runway[run], run))
        checks.append(_check(SUBJECTS[0], "low_balance", members[SUBJECTS[0]], OUTCOMES[run], run))
        checks.append(_check("partner", "low_balance", None, HISTORIES[100][run], run))
        runs.append(checks)
    return runs


def one_at_a_time(conn, checks, now):
    return [evaluate(conn, check, SETTINGS, now) for check in checks]


def many(conn, checks, now):
    return batch.evaluate_many(conn, checks, SETTINGS, now)


def quiet_then_many(conn, checks, now):
    """As the balance check does: the quiet moves first, then those that notify."""
    left = batch.evaluate_quiet(conn, checks, SETTINGS, now)
    events = [None] * len(checks)
    for index, made in zip(left, batch.evaluate_many(conn, [checks[i] for i in left], SETTINGS, now), strict=True):
        events[index] = made
    return events


def history_of(engine, path) -> list[tuple[list, list]]:
    """The events and the alert rows after each run, in a transaction rolled back after. Ids
    differ between the copies (a rolled-back sequence moves on): alerts and members are named."""
    columns = [c for c in Alert.__table__.c if c.name not in ("id", "member_id")]
    with engine.connect() as conn, conn.begin() as transaction:
        conn.execute(insert(Member), [{"corp_num": s, "name": s} for s in SUBJECTS])
        members = dict(conn.execute(select(Member.corp_num, Member.id)).all())
        corp_of = {member_id: corp for corp, member_id in members.items()}
        conn.execute(insert(AlertSilence), _silences())
        outcome = []
        for now, checks in zip(RUNS, _runs(members), strict=True):
            events = path(conn, checks, now)
            ids = {row.id: (row.subject, row.rule) for row in conn.execute(select(Alert.id, Alert.subject, Alert.rule))}
            named = [None if e is None else
                     (ids[e.alert_id], dataclasses.replace(e, alert_id=0, member_id=corp_of.get(e.member_id)))
                     for e in events]  # fmt: skip
            rows = conn.execute(select(*columns, Member.corp_num).outerjoin(Member, Member.id == Alert.member_id)
                                .order_by(Alert.subject, Alert.rule)).all()  # fmt: skip
            outcome.append((named, [dict(r._mapping) for r in rows]))
        transaction.rollback()
    return outcome


@pytest.mark.parametrize("path", [many, quiet_then_many])
def test_many_checks_at_once_move_alerts_and_notify_exactly_as_one_at_a_time(engine, monkeypatch, path):
    monkeypatch.setattr(batch, "CHECKS_PER_STATEMENT", 37)  # several statements a run, a subject across two
    expected = history_of(engine, one_at_a_time)
    assert history_of(engine, path) == expected

    # The matrix reached every state, every kind of event, and each silence held something back.
    events = [e for named, _ in expected for e in named if e]
    assert {e[1].kind for e in events} == {"firing", "repeat", "resolved", "unknown"}
    assert {row["state"] for _, rows in expected for row in rows} == {"ok", "pending", "firing", "unknown"}
    notified = {(subject, rule) for (subject, rule), _ in events}
    muted = [s for n, s in enumerate(SUBJECTS) if n % 8 == 1]
    assert not notified & {(s, r) for s in muted for r in ("low_balance", "runway")}
    assert any(row["subject"] in muted and row["state"] == "firing" and row["last_notified_at"] is None
               for _, rows in expected for row in rows)
    assert not {(s, "low_balance") for n, s in enumerate(SUBJECTS) if n % 8 == 2} & notified
    assert {(s, "runway") for n, s in enumerate(SUBJECTS) if n % 8 == 2} & notified
    by_run = [{e[1].rule for e in named if e} for named, _ in expected]
    assert "runway" not in by_run[1] | by_run[2] and "runway" in by_run[0] and "runway" in by_run[3]
    for kept in (3, 4):  # a silence that ended, one not yet started: notified
        assert {s for n, s in enumerate(SUBJECTS) if n % 8 == kept} & {subject for subject, _ in notified}


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=1, usage_per_day=0)) as simulator:
        yield simulator


def test_the_balance_check_in_batches_of_a_few_members_notifies_as_in_one(clean_engine, sim, monkeypatch):
    """Snapshots and quiet moves a few members a transaction, the notifying moves at the end:
    the same alerts and the same grouped notifications as one batch for all."""
    corps = [f"{6_000_000_000 + n:010d}" for n in range(11)]
    with clean_engine.begin() as conn:
        conn.execute(insert(Member), [{"corp_num": c, "name": c} for c in corps])
    settings = dataclasses.replace(client_settings(sim), alert_threshold=Decimal("1000"), alert_runway_days=0,
                                   partner_threshold=Decimal("0"), alert_repeat_seconds=3600)  # fmt: skip
    balances = [  # each run's balances: low, recovered inside the band, recovered, failing
        ["500", "500", "5000", "500", "1050", "500", "500", "5000", "500", "500", "5000"],
        ["500", "1050", "5000", "1200", "500", "500", "5000", "500", "500", "1200", "5000"],
        ["1200", "1050", "500", "500", "500", "1200", "5000", "500", "500", "500", "5000"],
    ]

    def nights() -> tuple[list, list]:
        service.silence(clean_engine, subject=corps[3], rule=None, duration=dt.timedelta(hours=2), comment="test",
                        created_by="test", now=T0)  # fmt: skip
        with PopbillClient(settings) as client:
            for run, values in enumerate(balances):
                for corp, value in zip(corps, values, strict=True):
                    sim.set_balance(corp, value)
                if run == 2:
                    sim.inject("rewrite", path="/POPBILL_TEST/Point", corp_num=corps[8], rate=1.0,
                               edits={"remainPoint": "NaN"})
                service.check_balances(clean_engine, client, settings, now=T0 + dt.timedelta(hours=run * 1.5))
        sim.clear_faults()
        with clean_engine.begin() as conn:
            alerts = conn.execute(select(*[c for c in Alert.__table__.c if c.name != "id"])
                                  .order_by(Alert.subject, Alert.rule)).all()  # fmt: skip
            sent = conn.execute(select(Notification.channel, Notification.rule, Notification.kind, Notification.text,
                                       Notification.payload).order_by(Notification.id)).all()  # fmt: skip
            for table in (Notification, AlertSilence, Alert):
                conn.execute(table.__table__.delete())
        return [tuple(a) for a in alerts], [tuple(n) for n in sent]

    whole = nights()
    monkeypatch.setattr(service, "MEMBERS_PER_BATCH", 3)
    monkeypatch.setattr(batch, "CHECKS_PER_STATEMENT", 2)
    assert nights() == whole
    _, sent = whole
    changes = [{alert["change"] for alert in payload["alerts"]} for *_, payload in sent]
    assert len(sent) == len(balances) and set().union(*changes) == {"firing", "repeat", "unknown", "resolved"}
    assert corps[3] not in sent[0][3] and corps[3] in sent[2][3]  # muted at the first run only
