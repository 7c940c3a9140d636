"""Faults the simulator injects, for the next N matching calls or at a rate.

Faults of the 'before' phase answer instead of the service (the call is not processed);
those of the 'after' phase spoil the answer of a call that was processed, as a stalled
read or a dropped connection does in real life.
"""

from __future__ import annotations

import dataclasses
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
}


@dataclasses.dataclass
class Fault:
    kind: str
    path: str = ""  # applies to paths starting with this ('' = every path)
    method: str = ""  # '' = every method
    count: int | None = None  # the next N matching calls
    rate: float | None = None  # or this share of matching calls
    status: int = 503
    seconds: float = 0.0
    retry_after: float = 1.0
    skip: int = 0  # let this many matching calls through first

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if (self.count is None) == (self.rate is None):
            raise ValueError("give exactly one of count or rate")
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise ValueError("rate must be between 0 and 1")

    @property
    def phase(self) -> str:
        return KINDS[self.kind]

    def matches(self, method: str, path: str, bearer: bool = True) -> bool:
        # Linkhub never answers a token request with "token expired": such a fault waits for
        # the next call that carries a token.
        if self.kind == "expired_token" and not bearer:
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

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def draw(self, method: str, path: str, bearer: bool = True) -> Fault | None:
        """The fault for this call, if any, spending one of a counted fault's uses."""
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(method, path, bearer):
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
