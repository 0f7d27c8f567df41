"""Looking into a traced guest: its memory, and which of its tasks is running.

At a SYSCALL or SYSRET trap the guest is in user-GS state, so MSR KERNEL_GS_BASE holds the
trapping CPU's per-CPU base and the running task is ``*(kernel_gs_base + <per-CPU offset of
current_task>)``; its pid, tgid and comm are fields of ``struct task_struct``. The offsets come
from the guest kernel's own BTF (:class:`~libvirt_nitro.linux.layout.KernelLayout`), found in
the directly booted kernel image of the domain or in an image the user names. Memory is read
from QEMU's own mapping of guest RAM through the CR3 of the event
(:mod:`libvirt_nitro.memory`), never through the trap engine's gdbstub connection.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from .errors import NitroError
from .memory import CR4_LA57, QemuPhysicalMemory, VirtualMemory

__all__ = ["Task", "GuestIntrospection"]

log = logging.getLogger(__name__)

#: CR3 bit that selects the user half of a page-table-isolation PGD pair
#: (arch/x86/mm/pti.c: PTI_USER_PGTABLE_BIT, with 8 KiB PGDs).
PTI_USER_PGD_BIT = 1 << 12


@dataclass(frozen=True)
class Task:
    """A guest thread: ``pid`` is its thread group id (what ``getpid()`` returns), ``tid``
    its own id, ``comm`` its command name (at most 15 bytes)."""

    pid: int
    tid: int
    comm: str


class GuestIntrospection:
    """Guest memory by CR3, and the running task when the guest kernel's layout is known.

    ``layout_note`` says, once, why tasks cannot be named (no kernel image, unsupported kernel).
    """

    def __init__(self, physical: QemuPhysicalMemory, layout: Any | None, layout_note: str = ""):
        self.physical = physical
        self.layout = layout
        self.layout_note = layout_note
        self._memories: dict[tuple[int, bool], VirtualMemory] = {}

    @classmethod
    def for_domain(
        cls, dom: Any, process: Any, kernel_image: str | None = None
    ) -> GuestIntrospection:
        """Introspection of the running domain *dom* (resolved to *process*).

        *kernel_image* is the guest kernel (bzImage); by default the domain's directly booted
        kernel. Without a usable image of its own, tasks are unknown (``layout_note`` says
        why).

        :raises NitroError: *kernel_image*, named by the user, is not a usable kernel image.
        """
        from .linux.layout import KernelLayout

        image = kernel_image or process.xml.kernel
        layout, note = None, ""
        if image is None:
            note = "the guest boots from a disk: name its kernel image to see pids"
        elif not os.access(image, os.R_OK):
            note = f"cannot read the guest kernel image {image}"
        else:
            try:
                layout = KernelLayout.from_image(image)
            except NitroError as exc:
                note = str(exc)
        if kernel_image is not None and layout is None:
            raise NitroError(f"kernel image {kernel_image}: {note}")
        return cls(QemuPhysicalMemory.from_domain(dom, process.pid), layout, note)

    def close(self) -> None:
        """Release QEMU's memory file."""
        self.physical.close()

    def memory(self, cr3: int, la57: bool = False) -> VirtualMemory:
        """Guest-virtual memory of the address space *cr3* (5-level paging with *la57*:
        CR4.LA57), cached for one event's worth of reads: call :meth:`forget` when the
        guest ran."""
        memory = self._memories.get((cr3, la57))
        if memory is None:
            memory = self._memories[(cr3, la57)] = VirtualMemory(self.physical, cr3, la57)
        return memory

    def forget(self) -> None:
        """Drop cached translations (page tables change while the guest runs)."""
        self._memories.clear()

    def at_trap(self, regs: Any) -> tuple[Task | None, VirtualMemory]:
        """The running task and the memory of the trapping address space, for the registers
        *regs* of an event (``cr3``, ``cr4``, ``kernel_gs_base``); translations cached before
        are dropped first (the guest ran since)."""
        self.forget()
        la57 = bool(regs.cr4 & CR4_LA57)
        task = self.current_task(regs.cr3, regs.kernel_gs_base, la57)
        return task, self.memory(regs.cr3, la57)

    def current_task(self, cr3: int, kernel_gs_base: int, la57: bool = False) -> Task | None:
        """The task running on the CPU whose per-CPU base is *kernel_gs_base*, or None when
        the layout is unknown or the reads fail."""
        layout = self.layout
        if layout is None or kernel_gs_base == 0:
            return None
        # With page-table isolation the trap happens on the user page tables, which do not
        # map the kernel; the kernel's own PGD is the even page of the 8 KiB pair.
        for root in dict.fromkeys((cr3, cr3 & ~PTI_USER_PGD_BIT)):
            memory = self.memory(root, la57)
            try:
                task = memory.read_u64(layout.current_task_address(kernel_gs_base))
                pid = memory.read_u32(task + layout.task_tgid)
                tid = memory.read_u32(task + layout.task_pid)
                comm = memory.read(task + layout.task_comm, layout.task_comm_len)
            except NitroError as exc:
                log.debug("current task unreadable through CR3 %#x: %s", root, exc)
                continue
            return Task(pid, tid, comm.split(b"\0", 1)[0].decode(errors="replace"))
        return None
