"""A local Popbill: Linkhub auth and the point-management API over real HTTP."""

from ledger.simulator.faults import Fault
from ledger.simulator.server import Simulator
from ledger.simulator.world import SimConfig, World

__all__ = ["Fault", "SimConfig", "Simulator", "World"]
