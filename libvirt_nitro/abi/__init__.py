"""The Nitro event ABI in Python: ``struct kvm_nitro_event`` (:mod:`.event`) and the ring of
``kernel/include/uapi/linux/kvm_nitro.h`` (:mod:`.ring`), shared by every backend; the
trap-time capture of ``kvm_nitro_capture.h``: the recipe handed to the kernel
(:mod:`.recipe`) and the captured bytes after an event (:mod:`.capture`).

Event and ring need the compiled cffi extension (:mod:`libvirt_nitro.ioctl`); recipe and
capture are plain ``struct`` layouts, checked against the header by
``tests/test_capture_abi.py``.
"""

from __future__ import annotations

from .event import EVENT_SYSCALL, EVENT_SYSENTER, EVENT_SYSEXIT, EVENT_SYSRET, Event, Regs
from .ring import ABI_VERSION, EVENT_SIZE, HEADER_SIZE, Ring

__all__ = [
    "ABI_VERSION",
    "EVENT_SIZE",
    "EVENT_SYSCALL",
    "EVENT_SYSENTER",
    "EVENT_SYSEXIT",
    "EVENT_SYSRET",
    "HEADER_SIZE",
    "Event",
    "Regs",
    "Ring",
]
