"""Guest memory read from outside the guest, without stopping it.

:mod:`.physmem` reads guest-physical memory straight out of the QEMU process;
:mod:`.paging` walks the guest's x86-64 page tables over it to read guest-virtual memory of
any address space, given its CR3 (as recorded in an event)::

    with QemuPhysicalMemory.from_domain(dom, process.pid) as phys:
        path, truncated = VirtualMemory(phys, event.regs.cr3).read_cstring(event.regs.rsi)
"""

from __future__ import annotations

from ..errors import GuestMemoryError, PageFault
from .paging import CR4_LA57, PhysicalMemory, VirtualMemory, translate, walk
from .physmem import QemuPhysicalMemory, RamRange

__all__ = [
    "CR4_LA57",
    "GuestMemoryError",
    "PageFault",
    "PhysicalMemory",
    "QemuPhysicalMemory",
    "RamRange",
    "VirtualMemory",
    "translate",
    "walk",
]
