"""Pair system call exits with their entries, without guest kernel knowledge.

A thread's SYSCALL and the SYSRET that ends it share the address space (CR3), the user
stack pointer (SYSCALL keeps RSP; SYSRET restores it) and the return address (RCX at SYSRET
is the SYSCALL's RIP + 2). That triple identifies the call across vCPUs, since the guest
kernel may run the exit on another vCPU. Calls that do not return that way (execve, exit,
rt_sigreturn, or an exit taken through IRET) leave their entry unmatched; entries older than
the newest :data:`MAX_PENDING` are forgotten.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["SyscallPairer", "MAX_PENDING"]

#: Entries kept waiting for their exit.
MAX_PENDING = 4096


class SyscallPairer:
    """Remembers entries and finds the one an exit belongs to."""

    def __init__(self, max_pending: int = MAX_PENDING):
        self._pending: OrderedDict[tuple[int, int, int], int] = OrderedDict()
        self._max = max_pending

    def enter(self, cr3: int, rsp: int, rip: int, nr: int) -> None:
        """Record the entry of syscall *nr* made by the SYSCALL at *rip*."""
        self._pending[(cr3, rsp, rip + 2)] = nr
        if len(self._pending) > self._max:
            self._pending.popitem(last=False)

    def exit(self, cr3: int, rsp: int, return_rip: int) -> int | None:
        """The syscall number of the entry this exit returns from, or None if unknown."""
        return self._pending.pop((cr3, rsp, return_rip), None)
