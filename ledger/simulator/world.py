"""The simulator's ground truth: a clock, members with deterministic histories, and the
pending payments and refunds that the API creates.

Amounts are kept as integers in tenths of a point, so the balance chain is exact and fast,
and formatted as decimal strings on the wire. Every member's usage chain is append-only in
time order; its last balance is the member's balance.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import hashlib
import json
import random
import threading
import time
from decimal import Decimal

from ledger.kst import KST
from ledger.popbill import codes

# itemCode: (unit cost in tenths of a point, service name, weight in the usage mix). Popbill's
# own codes (the SDKs' token scopes; the item_codes table names them all); the mix looks like a
# real partner's: mostly 세금계산서, 문자, 카카오톡 and 예금주조회.
ITEMS = {
    110: (100, "전자세금계산서", 30),
    121: (100, "전자명세서(거래명세서)", 2),
    140: (50, "현금영수증", 4),
    150: (84, "문자 (SMS)", 14),
    151: (295, "문자 (LMS)", 6),
    152: (600, "문자 (MMS)", 2),
    153: (70, "카카오톡 (153)", 10),
    154: (80, "카카오톡 (154)", 6),
    160: (355, "팩스 (160)", 2),
    170: (100, "휴폐업조회", 3),
    182: (250, "예금주조회(성명)", 8),
    183: (500, "예금주조회(실명)", 3),
}
_ITEM_CODES = list(ITEMS)
_ITEM_WEIGHTS = [weight for _, _, weight in ITEMS.values()]
USERS = [("user01", "김하나"), ("user02", "이두리"), ("user03", "박세나"), ("api", "API")]
AVERAGE_COST = sum(cost * weight for cost, _, weight in ITEMS.values()) / sum(_ITEM_WEIGHTS)


def fmt_points(tenths: int) -> str:
    sign = "-" if tenths < 0 else ""
    whole, frac = divmod(abs(tenths), 10)
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def to_tenths(value) -> int:
    amount = Decimal(str(value)) * 10
    if amount != amount.to_integral_value():
        raise ValueError(f"amount has more than one decimal place: {value}")
    return int(amount)


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(KST).strftime("%Y%m%d%H%M%S")


@dataclasses.dataclass
class Payment:
    settle_code: str
    reg_dt: str
    settler_name: str
    settler_email: str
    payment_name: str
    settle_cost: int
    settle_point: int
    settle_state: int = codes.SETTLE_PENDING
    state_dt: str = ""
    polls: int = 0
    requested_at: float = dataclasses.field(default_factory=time.monotonic)
    auto_complete_day: dt.date | None = None  # generated history only

    def wire(self) -> dict:
        return {
            "productType": "포인트 충전",
            "productName": "연동회원 포인트",
            "settleType": "무통장입금",
            "settlerName": self.settler_name,
            "settlerEmail": self.settler_email,
            "settleCost": fmt_points(self.settle_cost),
            "settlePoint": fmt_points(self.settle_point),
            "settleState": self.settle_state,
            "regDT": self.reg_dt,
            "stateDT": self.state_dt or self.reg_dt,
        }


@dataclasses.dataclass
class Refund:
    refund_code: str
    req_dt: str
    request_point: int
    account_bank: str
    account_num: str
    account_name: str
    reason: str
    contact_name: str
    tel: str
    state: int = codes.REFUND_PENDING
    polls: int = 0
    requested_at: float = dataclasses.field(default_factory=time.monotonic)
    auto_complete_day: dt.date | None = None

    def wire(self) -> dict:
        return {
            "reqDT": self.req_dt,
            "requestPoint": fmt_points(self.request_point),
            "accountBank": self.account_bank,
            "accountNum": self.account_num,
            "accountName": self.account_name,
            "state": self.state,
            "reason": self.reason,
        }


@dataclasses.dataclass(frozen=True)
class SimConfig:
    seed: int = 1
    start: dt.datetime | None = None  # the simulated clock at start-up; default: now in Korea
    history_days: int = 400
    usage_per_day: float = 10.0  # usage rows per member per day
    settle_after_polls: int | None = 3  # a requested deposit completes after N GetSettleResult calls
    settle_after_seconds: float | None = None
    refund_after_polls: int | None = 3
    refund_after_seconds: float | None = None
    partner_balance: str = "5000000"
    # Whether txPoint is signed on the wire is not documented: False serves magnitudes, True
    # serves debits as negative numbers. The ledger must read both.
    signed_tx_point: bool = False
    # With N > 0, members share N histories (by CorpNum modulo N; each member still has its
    # own copy): a benchmark can sync one member of each for real and clone its ledger for the
    # rest. 0: every member its own history.
    distinct_histories: int = 0


class Member:
    """One member's history. All access goes through World's lock."""

    def __init__(
        self,
        corp_num: str,
        seed: int,
        start_day: dt.date,
        last_day: dt.date,
        signed_tx_point: bool = False,
        distinct_histories: int = 0,
    ) -> None:
        self.corp_num = corp_num
        self.signed_tx_point = signed_tx_point
        # What the generated rows are derived from (names and account numbers included).
        self.history = f"{int(corp_num) % distinct_histories:010d}" if distinct_histories else corp_num
        digest = hashlib.sha256(f"{seed}:{self.history}".encode()).digest()
        self.rng = random.Random(int.from_bytes(digest[:8], "big"))
        # Some members end their generated history with a deposit still waiting, to be
        # completed by polling GetSettleResult as a requested one is.
        self.pending_tail_day = last_day if self.rng.random() < 0.4 else None
        self.tx_dts: list[str] = []  # sorted, for bisect
        self.usage_rows: list[tuple] = []  # (txDT, itemCode, txType, txPoint, balance, serviceUserID, userID, userName)
        self.usage_json: list[bytes] = []
        self.payments: list[Payment] = []
        self.refunds: list[Refund] = []
        self.balance = 0
        self.bonus = 0
        self.generated_until = start_day - dt.timedelta(days=1)
        self.code_seq = 0
        self.version = 0
        self.closed = False
        self.held_back = 0  # the newest rows not served yet, as a lagging index would
        self.reported_offset = 0  # added to GetBalance only: a balance that disagrees with the chain
        self.withheld: list[tuple] = []  # rows taken out of the served history, to come back late

    @property
    def last_tx_dt(self) -> str:
        return self.tx_dts[-1] if self.tx_dts else ""

    @property
    def refundable(self) -> int:
        return max(0, self.balance - self.bonus)

    def next_code(self, moment: str, kind: str) -> str:
        self.code_seq += 1
        # 18 characters like Popbill's: yyMMddHHmmss, a kind digit, a 5-digit sequence.
        return f"{moment[2:14]}{kind}{self.code_seq:05d}"

    def append_usage(self, tx_dt: str, item_code: int, tx_type: int, points: int, user: tuple[str, str]) -> None:
        """Append a transaction; `points` is signed, the wire shows its magnitude."""
        if tx_dt < self.last_tx_dt:
            tx_dt = self.last_tx_dt
        self.balance += points
        if tx_type == codes.TX_BONUS:
            self.bonus += points
        elif points < 0 and self.bonus > self.balance:
            self.bonus = max(0, self.balance)
        row = (tx_dt, item_code, tx_type, abs(points), self.balance, "", user[0], user[1])
        self.usage_rows.append(row)
        self.tx_dts.append(tx_dt)
        self.usage_json.append(
            json.dumps(
                {
                    "itemCode": item_code,
                    "txType": tx_type,
                    "txPoint": fmt_points(points if self.signed_tx_point else abs(points)),
                    "balance": fmt_points(self.balance),
                    "txDT": tx_dt,
                    "serviceUserID": row[5],
                    "userID": user[0],
                    "userName": user[1],
                },
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
        )
        self.version += 1

    def complete_payment(self, payment: Payment, moment: str) -> None:
        payment.settle_state = codes.SETTLE_DONE
        payment.state_dt = moment
        self.append_usage(moment, 0, codes.TX_CHARGE, payment.settle_point, ("", "팝빌"))
        self.version += 1

    def complete_refund(self, refund: Refund, moment: str) -> None:
        refund.state = codes.REFUND_DONE
        self.append_usage(moment, 0, codes.TX_REFUND, -refund.request_point, ("", "팝빌"))
        self.version += 1

    def generate_day(self, day: dt.date, usage_per_day: float) -> None:
        """Deterministic events of one whole day, appended after whatever is already there."""
        rng = self.rng
        base = dt.datetime(day.year, day.month, day.day, tzinfo=KST)
        events: list[tuple[str, int, object]] = []  # (txDT, order, action)

        def at(seconds: int) -> str:
            return stamp(base + dt.timedelta(seconds=seconds))

        for payment in self.payments:
            if payment.auto_complete_day == day and payment.settle_state == codes.SETTLE_PENDING:
                events.append((at(rng.randrange(36000, 57600)), 0, ("settle", payment)))
        for refund in self.refunds:
            if refund.auto_complete_day == day and refund.state == codes.REFUND_PENDING:
                events.append((at(rng.randrange(36000, 57600)), 0, ("refund", refund)))
        whole = int(usage_per_day)
        count = whole + (1 if rng.random() < usage_per_day - whole else 0)
        for _ in range(count):
            item = rng.choices(_ITEM_CODES, _ITEM_WEIGHTS)[0]
            events.append((at(rng.randrange(32400, 68400)), 1, ("use", item, rng.choice(USERS))))
        events.sort(key=lambda e: (e[0], e[1]))

        pending_charge = any(p.settle_state == codes.SETTLE_PENDING for p in self.payments)
        for tx_dt, _, action in events:
            kind = action[0]
            if kind == "settle":
                self.complete_payment(action[1], max(tx_dt, self.last_tx_dt))
                if rng.random() < 0.3:
                    bonus = action[1].settle_point // 20
                    self.append_usage(max(tx_dt, self.last_tx_dt), 0, codes.TX_BONUS, bonus, ("", "팝빌"))
            elif kind == "refund":
                refund = action[1]
                if refund.request_point <= self.refundable:
                    self.complete_refund(refund, max(tx_dt, self.last_tx_dt))
                else:
                    refund.state = codes.REFUND_REJECTED
            else:
                _, item, user = action
                cost = ITEMS[item][0]
                if cost <= self.balance:
                    self.append_usage(tx_dt, item, codes.TX_USE, -cost, user)
        daily = int(usage_per_day * AVERAGE_COST) or 1
        self._maybe_request_payment(day, base, pending_charge, daily)
        self._maybe_request_refund(day, base)
        if day == self.pending_tail_day and not any(p.settle_state == codes.SETTLE_PENDING for p in self.payments):
            self._request_pending_tail(base)
        self.generated_until = day

    def _request_pending_tail(self, base: dt.datetime) -> None:
        moment = max(stamp(base + dt.timedelta(hours=22)), self.last_tx_dt)
        self.payments.append(
            Payment(
                settle_code=self.next_code(moment, "1"),
                reg_dt=moment,
                settler_name="홍길동",
                settler_email="billing@example.com",
                payment_name=f"(주)회원{self.history[-4:]}",
                settle_cost=100_000,
                settle_point=100_000,
                state_dt=moment,
            )
        )

    def _maybe_request_payment(self, day: dt.date, base: dt.datetime, pending_charge: bool, daily: int) -> None:
        """Charge when the balance would last under ten more days, for 30 to 90 days of use."""
        rng = self.rng
        if pending_charge or (self.payments and self.balance > daily * 10):
            return
        cost = max(100_000, -(-(daily * rng.choice([30, 60, 90])) // 100_000) * 100_000)
        moment = max(stamp(base + dt.timedelta(seconds=rng.randrange(69000, 75600))), self.last_tx_dt)
        repeats = 2 if rng.random() < 0.05 else 1  # now and then a double submission, same second
        for _ in range(repeats):
            payment = Payment(
                settle_code=self.next_code(moment, "1"),
                reg_dt=moment,
                settler_name="홍길동",
                settler_email="billing@example.com",
                payment_name=f"(주)회원{self.history[-4:]}",
                settle_cost=cost,
                settle_point=cost,
                state_dt=moment,
            )
            if not self.payments:
                # The opening deposit completes at once, so the chain starts funded.
                payment.settle_state = codes.SETTLE_DONE
                self.append_usage(moment, 0, codes.TX_CHARGE, cost, ("", "팝빌"))
            elif rng.random() < 0.05:
                payment.settle_state = codes.SETTLE_CANCELLED
            else:
                payment.auto_complete_day = day + dt.timedelta(days=rng.randrange(1, 4))
            self.payments.append(payment)

    def _maybe_request_refund(self, day: dt.date, base: dt.datetime) -> None:
        rng = self.rng
        if rng.random() >= 0.01 or self.refundable < 50_000:
            return
        moment = max(stamp(base + dt.timedelta(seconds=rng.randrange(76000, 79000))), self.last_tx_dt)
        self.refunds.append(
            Refund(
                refund_code=self.next_code(moment, "2"),
                req_dt=moment,
                request_point=self.refundable // 50_000 * 10_000,  # about a fifth, in whole thousands
                account_bank="국민",  # the bank by name, as Popbill's examples send it
                account_num=f"1234{self.history[-6:]}",
                account_name="홍길동",
                reason="서비스 해지",
                contact_name="홍길동",
                tel="010-0000-0000",
                auto_complete_day=day + dt.timedelta(days=rng.randrange(1, 5)),
            )
        )
        self.version += 1


class World:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        start = self.config.start or dt.datetime.now(KST)
        self._clock_base = start.astimezone(KST).replace(microsecond=0)
        self._clock_started = time.monotonic()
        self._offset = dt.timedelta()
        self.skew = dt.timedelta()  # how far this server's wall clock is off the real time
        self.lock = threading.RLock()
        self.members: dict[str, Member] = {}
        self.partner_balance = to_tenths(self.config.partner_balance)

    # -- clock ---------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        elapsed = dt.timedelta(seconds=int(time.monotonic() - self._clock_started))
        return self._clock_base + elapsed + self._offset + self.skew

    def wall_now(self) -> dt.datetime:
        """The server's own wall clock: the real time plus its skew, whatever days were advanced."""
        return dt.datetime.now(KST).replace(microsecond=0) + self.skew

    def skew_clock(self, seconds: float) -> None:
        with self.lock:
            self.skew = dt.timedelta(seconds=seconds)

    def today(self) -> dt.date:
        return self.now().date()

    def advance_days(self, days: int) -> dt.datetime:
        with self.lock:
            self._offset += dt.timedelta(days=days)
            for member in self.members.values():
                self._catch_up(member)
            return self.now()

    # -- members -------------------------------------------------------------------------

    def member(self, corp_num: str) -> Member:
        with self.lock:
            member = self.members.get(corp_num)
            if member is None:
                first_day = self._clock_base.date() - dt.timedelta(days=self.config.history_days)
                last_day = self._clock_base.date() - dt.timedelta(days=1)
                member = self.members[corp_num] = Member(
                    corp_num,
                    self.config.seed,
                    first_day,
                    last_day,
                    self.config.signed_tx_point,
                    self.config.distinct_histories,
                )
            self._catch_up(member)
            return member

    def prepare(self, corp_nums) -> None:
        """Generate histories now rather than on first request (benchmarks time the client)."""
        for corp_num in corp_nums:
            self.member(corp_num)

    def _catch_up(self, member: Member) -> None:
        yesterday = self.today() - dt.timedelta(days=1)
        day = member.generated_until + dt.timedelta(days=1)
        while day <= yesterday:
            member.generate_day(day, self.config.usage_per_day)
            day += dt.timedelta(days=1)

    # -- pending items -------------------------------------------------------------------

    def find_payment(self, corp_num: str, settle_code: str) -> Payment | None:
        member = self.member(corp_num)
        return next((p for p in member.payments if p.settle_code == settle_code), None)

    def find_refund(self, corp_num: str, refund_code: str) -> Refund | None:
        member = self.member(corp_num)
        return next((r for r in member.refunds if r.refund_code == refund_code), None)

    def request_payment(self, corp_num: str, form: dict) -> Payment:
        with self.lock:
            member = self.member(corp_num)
            moment = max(stamp(self.now()), member.last_tx_dt)
            cost = to_tenths(form["settlecost"])
            payment = Payment(
                settle_code=member.next_code(moment, "1"),
                reg_dt=moment,
                settler_name=form["settlername"],
                settler_email=form["settleremail"],
                payment_name=form["paymentname"],
                settle_cost=cost,
                settle_point=cost,
                state_dt=moment,
            )
            member.payments.append(payment)
            member.version += 1
            return payment

    def request_refund(self, corp_num: str, form: dict) -> Refund:
        with self.lock:
            member = self.member(corp_num)
            moment = max(stamp(self.now()), member.last_tx_dt)
            refund = Refund(
                refund_code=member.next_code(moment, "2"),
                req_dt=moment,
                request_point=to_tenths(form["requestpoint"]),
                account_bank=form["accountbank"],
                account_num=form["accountnum"],
                account_name=form["accountname"],
                reason=form["reason"],
                contact_name=form["contactname"],
                tel=form["tel"],
            )
            member.refunds.append(refund)
            member.version += 1
            return refund

    def poll_payment(self, corp_num: str, payment: Payment) -> None:
        """A GetSettleResult call: completes the deposit once its poll count or delay is reached."""
        with self.lock:
            payment.polls += 1
            if payment.settle_state != codes.SETTLE_PENDING or payment.auto_complete_day is not None:
                return
            cfg = self.config
            due_polls = cfg.settle_after_polls is not None and payment.polls >= cfg.settle_after_polls
            due_time = cfg.settle_after_seconds is not None and (
                time.monotonic() - payment.requested_at >= cfg.settle_after_seconds
            )
            if due_polls or due_time:
                self.complete_payment(corp_num, payment.settle_code)

    def poll_refund(self, corp_num: str, refund: Refund) -> None:
        with self.lock:
            refund.polls += 1
            if refund.state != codes.REFUND_PENDING or refund.auto_complete_day is not None:
                return
            cfg = self.config
            due_polls = cfg.refund_after_polls is not None and refund.polls >= cfg.refund_after_polls
            due_time = cfg.refund_after_seconds is not None and (
                time.monotonic() - refund.requested_at >= cfg.refund_after_seconds
            )
            if due_polls or due_time:
                self.complete_refund(corp_num, refund.refund_code)

    def complete_payment(self, corp_num: str, settle_code: str) -> Payment:
        with self.lock:
            member = self.member(corp_num)
            payment = self._pending_payment(corp_num, settle_code)
            member.complete_payment(payment, max(stamp(self.now()), member.last_tx_dt))
            return payment

    def cancel_payment(self, corp_num: str, settle_code: str) -> Payment:
        with self.lock:
            member = self.member(corp_num)
            payment = self._pending_payment(corp_num, settle_code)
            payment.settle_state = codes.SETTLE_CANCELLED
            payment.state_dt = max(stamp(self.now()), member.last_tx_dt)
            member.version += 1
            return payment

    def complete_refund(self, corp_num: str, refund_code: str) -> Refund:
        with self.lock:
            member = self.member(corp_num)
            refund = self._pending_refund(corp_num, refund_code)
            member.complete_refund(refund, max(stamp(self.now()), member.last_tx_dt))
            return refund

    def cancel_refund(self, corp_num: str, refund_code: str) -> Refund:
        with self.lock:
            refund = self._pending_refund(corp_num, refund_code)
            refund.state = codes.REFUND_REJECTED
            self.member(corp_num).version += 1
            return refund

    def _pending_payment(self, corp_num: str, settle_code: str) -> Payment:
        payment = self.find_payment(corp_num, settle_code)
        if payment is None or payment.settle_state != codes.SETTLE_PENDING:
            raise KeyError(f"no pending payment {settle_code} for {corp_num}")
        return payment

    def _pending_refund(self, corp_num: str, refund_code: str) -> Refund:
        refund = self.find_refund(corp_num, refund_code)
        if refund is None or refund.state != codes.REFUND_PENDING:
            raise KeyError(f"no pending refund {refund_code} for {corp_num}")
        return refund

    def set_balance(self, corp_num: str, balance) -> None:
        """Move the balance through an adjustment row, so the chain stays whole."""
        with self.lock:
            member = self.member(corp_num)
            delta = to_tenths(balance) - member.balance
            if delta:
                tx_type = codes.TX_ADJUST_UP if delta > 0 else codes.TX_ADJUST_DOWN
                member.append_usage(max(stamp(self.now()), member.last_tx_dt), 0, tx_type, delta, ("", "팝빌"))

    def close_member(self, corp_num: str) -> None:
        with self.lock:
            self.member(corp_num).closed = True

    # -- ground truth, as served -----------------------------------------------------------

    def usage_truth(self, corp_num: str) -> list[dict]:
        with self.lock:
            member = self.member(corp_num)
            return [json.loads(b) for b in member.usage_json[: len(member.usage_json) - member.held_back]]

    def payments_truth(self, corp_num: str) -> list[dict]:
        with self.lock:
            return [p.wire() for p in self.member(corp_num).payments]

    def refunds_truth(self, corp_num: str) -> list[dict]:
        with self.lock:
            return [r.wire() for r in self.member(corp_num).refunds]

    def balance(self, corp_num: str) -> Decimal:
        with self.lock:
            return Decimal(fmt_points(self.member(corp_num).balance))

    def refundable_balance(self, corp_num: str) -> Decimal:
        with self.lock:
            return Decimal(fmt_points(self.member(corp_num).refundable))

    # -- windows, as the API serves them ---------------------------------------------------

    def usage_window(self, corp_num: str, s_date: str, e_date: str) -> tuple[Member, int, int]:
        member = self.member(corp_num)
        served = len(member.tx_dts) - member.held_back
        lo = bisect.bisect_left(member.tx_dts, s_date, 0, served)
        hi = bisect.bisect_right(member.tx_dts, e_date + "999999", 0, served)
        return member, lo, hi

    # -- discrepancies, for reconciliation tests and demos ------------------------------------

    def drop_usage_row(self, corp_num: str, index: int) -> dict:
        """Stop serving one usage row (the balance stays true): a missing row."""
        with self.lock:
            member = self.member(corp_num)
            index = index % len(member.usage_rows)
            member.tx_dts.pop(index)
            member.usage_rows.pop(index)
            member.version += 1
            return json.loads(member.usage_json.pop(index))

    def withhold_usage_row(self, corp_num: str, day: dt.date) -> dict:
        """Stop serving the first usage row of `day` until release_withheld(): a row that arrives
        late upstream (the rows after it already carry its effect on the balance)."""
        with self.lock:
            member = self.member(corp_num)
            index = bisect.bisect_left(member.tx_dts, f"{day:%Y%m%d}")
            if index >= len(member.tx_dts) or not member.tx_dts[index].startswith(f"{day:%Y%m%d}"):
                raise KeyError(f"no usage row of {corp_num} on {day}")
            taken = (member.tx_dts.pop(index), member.usage_rows.pop(index), member.usage_json.pop(index))
            member.withheld.append(taken)
            member.version += 1
            return json.loads(taken[2])

    def release_withheld(self, corp_num: str) -> None:
        """Serve the withheld rows again, each in its place by time."""
        with self.lock:
            member = self.member(corp_num)
            for tx_dt, row, wire in member.withheld:
                index = bisect.bisect_right(member.tx_dts, tx_dt)
                member.tx_dts.insert(index, tx_dt)
                member.usage_rows.insert(index, row)
                member.usage_json.insert(index, wire)
            member.withheld.clear()
            member.version += 1

    def double_usage_row(self, corp_num: str, index: int) -> dict:
        """Serve one usage row twice: a doubled row."""
        with self.lock:
            member = self.member(corp_num)
            index = index % len(member.usage_rows)
            member.tx_dts.insert(index + 1, member.tx_dts[index])
            member.usage_rows.insert(index + 1, member.usage_rows[index])
            member.usage_json.insert(index + 1, member.usage_json[index])
            member.version += 1
            return json.loads(member.usage_json[index])

    def last_usage_index(self, corp_num: str, tx_type: int) -> int:
        with self.lock:
            rows = self.member(corp_num).usage_rows
            return next(i for i in range(len(rows) - 1, -1, -1) if rows[i][2] == tx_type)

    def lose_credit(self, corp_num: str) -> dict:
        """Drop the newest deposit credit from the use history: a deposit with no credit."""
        return self.drop_usage_row(corp_num, self.last_usage_index(corp_num, codes.TX_CHARGE))

    def hide_payment(self, corp_num: str, settle_code: str) -> dict:
        """Stop listing one payment in GetPaymentHistory: its credit then has no deposit."""
        with self.lock:
            member = self.member(corp_num)
            payment = next(p for p in member.payments if p.settle_code == settle_code)
            member.payments.remove(payment)
            member.version += 1
            return payment.wire()

    def shift_reported_balance(self, corp_num: str, delta) -> None:
        """GetBalance answers the true balance plus delta; the history is untouched."""
        with self.lock:
            self.member(corp_num).reported_offset = to_tenths(delta)

    def reported_balance(self, corp_num: str) -> int:
        with self.lock:
            member = self.member(corp_num)
            return member.balance + member.reported_offset

    def hold_back(self, corp_num: str, rows: int) -> None:
        """Serve the newest `rows` usage rows only after release(): late-arriving rows."""
        with self.lock:
            self.member(corp_num).held_back = rows

    def release(self, corp_num: str) -> None:
        self.hold_back(corp_num, 0)
