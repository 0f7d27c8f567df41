"""Pair each system call exit with its entry, once, for every backend.

A thread's SYSCALL and the SYSRET that ends it are paired by the thread when the guest task is
known at both traps (the kernel may run the exit on another vCPU). They are also paired by the
call's frame: the address space (CR3), the user stack pointer (SYSCALL keeps RSP, SYSRET
restores it) and the return address (RCX at SYSRET is the SYSCALL's RIP + 2), which still
pairs them when the task could not be read at one of the two traps, or is never known (the
kernel backend). An entry whose exit never comes (execve, exit, a return through IRET) is
found again by the thread's next entry; entries beyond :data:`MAX_PENDING` are forgotten,
oldest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..introspect import Task

__all__ = ["Pairer", "pair_keys", "MAX_PENDING"]

#: Entries kept waiting for their exit.
MAX_PENDING = 4096

Key = tuple


def pair_keys(task: Task | None, cr3: int, rsp: int, return_rip: int) -> list[Key]:
    """The keys of a call: its thread when known, and its frame (address space, user stack
    pointer, return address)."""
    frame = ("frame", cr3, rsp, return_rip)
    return [("tid", task.tid), frame] if task is not None else [frame]


class Pairer:
    """Entries waiting for their exit, each under all its keys."""

    def __init__(self, max_pending: int = MAX_PENDING):
        self._pending: dict[Key, tuple[list[Key], Any]] = {}
        self._max = max_pending

    def remember(self, keys: list[Key], value: Any) -> None:
        """Keep *value* (what the exit needs of its entry) under every one of *keys*."""
        entry = (keys, value)
        for key in keys:
            self._pending[key] = entry
        while len(self._pending) > self._max:
            self.take([next(iter(self._pending))])

    def take(self, keys: list[Key]) -> Any:
        """The value remembered under the first of *keys* found (removed under all its
        keys), or None."""
        for key in keys:
            entry = self._pending.get(key)
            if entry is not None:
                for alias in entry[0]:
                    self._pending.pop(alias, None)
                return entry[1]
        return None
