"""Faults the simulator injects, for the next N matching calls or at a rate.

Faults of the 'before' phase answer instead of the service (the call is not processed);
those of the 'after' phase spoil the answer of a call that was processed, as a stalled
read or a dropped connection does in real life.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading

KINDS = {
    "latency": "before",  # wait `seconds`, then serve normally
    "status": "before",  # answer HTTP `status` (500, 503, ...) with a non-Popbill body
    "rate_limit": "before",  # answer 429 with Retry-After: `retry_after`
    "expired_token": "before",  # answer 401 'token expired' (only to calls that carry a token)
    "drop": "after",  # process, then close the connection without an answer
    "stall": "after",  # process, then wait `seconds` before answering
    "malformed_json": "after",  # process, then answer 200 with broken JSON
    "truncated_gzip": "after",  # process, then answer a gzip body cut short
    "answer": "before",  # answer HTTP `status` with `body` as given (any text: an error form, {}, NaN...)
    "rewrite": "after",  # process, then answer with `edits` made to its JSON (or `body` instead of it)
}


@dataclasses.dataclass
class Fault:
    kind: str
    path: str = ""  # applies to paths starting with this ('' = every path)
    method: str = ""  # '' = every method
    count: int | None = None  # the next N matching calls
    rate: float | None = None  # or this share of matching calls
    status: int | None = None  # 'status': 503 unless given; 'answer' and a rewrite's body: 200 unless given
    seconds: float = 0.0
    retry_after: float = 1.0
    skip: int = 0  # let this many matching calls through first
    corp_num: str = ""  # only this member's calls ('' = everyone's)
    body: str | None = None  # answer: the body; rewrite: the whole body, when given
    # rewrite: top-level fields of the JSON answer set to raw JSON text ("NaN", "1e400",
    # '"abc"', "null"), or removed (None)
    edits: dict[str, str | None] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if (self.count is None) == (self.rate is None):
            raise ValueError("give exactly one of count or rate")
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        if self.kind == "answer" and self.body is None:
            raise ValueError("an answer fault needs a body")
        if self.kind == "rewrite" and self.body is None and not self.edits:
            raise ValueError("a rewrite fault needs edits or a body")

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else 503 if self.kind == "status" else 200

    @property
    def phase(self) -> str:
        return KINDS[self.kind]

    def matches(self, method: str, path: str, bearer: bool = True, corp_num: str | None = None) -> bool:
        # Linkhub never answers a token request with "token expired": such a fault waits for
        # the next call that carries a token.
        if self.kind == "expired_token" and not bearer:
            return False
        if self.corp_num and self.corp_num != corp_num:
            return False
        return path.startswith(self.path) and (not self.method or self.method.upper() == method)


class FaultPlan:
    def __init__(self, seed: int = 0) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def by_member(self) -> bool:
        """Some fault is aimed at one member: calls must say whose they are to be matched."""
        return any(f.corp_num for f in self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def draw(self, method: str, path: str, bearer: bool = True, corp_num: str | None = None) -> Fault | None:
        """The fault for this call, if any, spending one of a counted fault's uses."""
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(method, path, bearer, corp_num):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
                if self._rng.random() < fault.rate:
                    return fault
        return None


def rewrite(body: bytes, edits: dict[str, str | None]) -> bytes:
    """The JSON object `body` with top-level fields set to raw JSON text or removed; the other
    fields keep their own text exactly (a number stays the digits it was)."""
    decoder = json.JSONDecoder()
    text = body.decode()
    if not text.lstrip().startswith("{"):
        raise ValueError("a rewrite needs a JSON object answer")
    # The fields as (name, raw text of the value), in order, without re-encoding any value.
    fields: list[tuple[str, str]] = []
    position = text.index("{") + 1
    while True:
        position = _skip_space(text, position)
        if text[position] == "}":
            break
        if text[position] == ",":
            position = _skip_space(text, position + 1)
        name, position = decoder.raw_decode(text, position)
        position = _skip_space(text, position) + 1  # the colon
        position = _skip_space(text, position)
        _, end = decoder.raw_decode(text, position)
        fields.append((name, text[position:end]))
        position = end
    kept = [(name, value) for name, value in fields if name not in edits]
    kept += [(name, value) for name, value in edits.items() if value is not None]
    return ("{" + ",".join(f"{json.dumps(name, ensure_ascii=False)}:{value}" for name, value in kept) + "}").encode()


def _skip_space(text: str, position: int) -> int:
    while text[position] in " \t\r\n":
        position += 1
    return position
