"""Pair each system call exit with its entry, once, for every backend.

A thread's SYSCALL and the SYSRET that ends it are paired by the thread (its tid) whenever
the guest task is known: the kernel may run the exit on another vCPU, and page-table roots
are reused by later processes, so the address space alone says nothing of who made a call.
An entry is also kept under its *frame*: the address space (CR3), the user stack pointer
(SYSCALL keeps RSP, SYSRET restores it) and the return address (RCX at SYSRET is the
SYSCALL's RIP + 2). The frame pairs a SYSRET with its entry only when the task could not
be read at one of the two traps (or is never known: the kernel backend), and never pairs
two calls of different known tasks.

An entry whose exit never comes (execve, a return through IRET) is found again by its own
thread's next entry (:meth:`Pairer.take_thread`). Entries of a thread that exits, or of a
whole process (``exit_group``), are dropped (:meth:`Pairer.drop_task`,
:meth:`Pairer.drop_process`). Entries beyond :data:`MAX_PENDING` are forgotten, oldest
first.
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
    """Entries waiting for their exit, each under all its keys, with the task that made it
    (None: unknown)."""

    def __init__(self, max_pending: int = MAX_PENDING):
        self._pending: dict[Key, tuple[list[Key], Task | None, Any]] = {}
        self._max = max_pending

    def __len__(self) -> int:
        return len({id(entry) for entry in self._pending.values()})

    def remember(self, keys: list[Key], value: Any, task: Task | None = None) -> None:
        """Keep *value* (what the exit needs of its entry) under every one of *keys*, made
        by *task*."""
        entry = (keys, task, value)
        for key in keys:
            # A key another entry holds (a frame shared by two tasks) now names this one;
            # the other stays reachable by its own thread.
            self._pending[key] = entry
        while len(self._pending) > self._max:
            self._forget(self._pending[next(iter(self._pending))])

    def _forget(self, entry: tuple[list[Key], Task | None, Any]) -> None:
        for alias in entry[0]:
            if self._pending.get(alias) is entry:
                del self._pending[alias]

    def take(self, keys: list[Key], task: Task | None = None) -> Any:
        """The value of the exit with these *keys* (made by *task*, None: unknown), removed
        under all its keys; None when no entry matches. A frame key matches an entry of
        another known task never."""
        for key in keys:
            entry = self._pending.get(key)
            if entry is None:
                continue
            other = entry[1]
            if task is not None and other is not None and other.tid != task.tid:
                continue
            self._forget(entry)
            return entry[2]
        return None

    def take_thread(self, task: Task | None, frame: Key) -> Any:
        """The entry a thread left without exit (found again at its next entry): by its
        tid when *task* is known, else by the frame (an entry of an unknown task)."""
        if task is not None:
            entry = self._pending.get(("tid", task.tid))
        else:
            entry = self._pending.get(frame)
            if entry is not None and entry[1] is not None:
                entry = None
        if entry is None:
            return None
        self._forget(entry)
        return entry[2]

    def drop_task(self, tid: int) -> None:
        """Forget the entries of thread *tid* (it exits)."""
        entry = self._pending.get(("tid", tid))
        if entry is not None:
            self._forget(entry)

    def drop_process(self, pid: int) -> None:
        """Forget the entries of every thread of process *pid* (``exit_group``, execve)."""
        doomed = {
            id(entry): entry
            for entry in self._pending.values()
            if entry[1] is not None and entry[1].pid == pid
        }
        for entry in doomed.values():
            self._forget(entry)
