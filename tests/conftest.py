from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from ledger.kst import KST
from ledger.popbill import PopbillClient
from ledger.settings import Settings
from ledger.simulator import SimConfig, Simulator

# A fixed start makes every generated history identical from run to run.
SIM_START = dt.datetime(2026, 11, 20, 15, 0, tzinfo=KST)
MEMBER = "1234567890"


def small_config(**overrides) -> SimConfig:
    options = {"seed": 7, "start": SIM_START, "history_days": 90, "usage_per_day": 6.0}
    options.update(overrides)
    return SimConfig(**options)


@pytest.fixture
def simulator():
    with Simulator(small_config()) as sim:
        yield sim


def client_settings(sim: Simulator, **overrides) -> Settings:
    base = Settings().with_hosts(sim.url)
    options = {"retry_backoff": 0.01, "retry_attempts": 4, "read_timeout": 2.0, "connect_timeout": 2.0}
    options.update(overrides)
    return dataclasses.replace(base, **options)


@pytest.fixture
def client(simulator):
    with PopbillClient(client_settings(simulator)) as popbill:
        yield popbill
