"""The Nitro trap engine, independent of the backend that drives the guest.

:mod:`.engine` holds the state machine (arm, handle a stop, disarm, restore); :mod:`.target`
the interface a backend implements for it.
"""

from __future__ import annotations

from .engine import ArmingPlan, NitroEngine, TrapEvent, VcpuFacts, restore_guest
from .target import TrapTarget

__all__ = ["ArmingPlan", "NitroEngine", "TrapEvent", "TrapTarget", "VcpuFacts", "restore_guest"]
