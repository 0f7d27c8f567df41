"""The typed record of one system call event: what the pipeline makes of a raw event and
what every formatter prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..introspect import Task
    from ..strace.values import Value

__all__ = ["SyscallRecord"]


@dataclass
class SyscallRecord:
    """One entry (SYSCALL/SYSENTER) or exit (SYSRET/SYSEXIT), decoded.

    :ivar direction: ``"enter"`` or ``"exit"``
    :ivar vcpu: the vCPU index of the event
    :ivar timestamp_ns: the event's CLOCK_MONOTONIC time (ns)
    :ivar cr3: the guest page-table root at the trap
    :ivar rip: the trapped instruction's guest-virtual address
    :ivar task: the guest thread, when the backend could tell (None: unknown)
    :ivar nr: the system call number (x86-64; i386 for a 32-bit process); None for an exit
        whose entry was not seen
    :ivar name: strace's name of *nr* (``syscall_0x3ff`` for an unknown number), or None
    :ivar args: the six raw ``u64`` argument registers of the entry (an exit: of its entry;
        None when that was not seen)
    :ivar values: the arguments decoded (:data:`~libvirt_nitro.strace.values.Value`); at an
        entry None where an argument is decoded at the exit; None when nothing is decoded
        (raw mode, or a backend that cannot read guest memory)
    :ivar ret: an exit's return value, signed (``rax``)
    :ivar ret_text: an exit's return value as strace prints it, with its decorations
        (``-1 ENOENT (No such file or directory)``, ``0x2 (flags O_RDWR)``); at an entry,
        set when the line is complete there (``?`` of ``exit_group``); of an
        :attr:`unfinished` record, what it returned when its thread running on says it
        (``0`` of an execve), else None
    :ivar signal: the signal delivery this event shows (``rt_sigreturn``'s frame): ``(name,
        siginfo)``, printed as ``--- SIGUSR1 {si_signo=SIGUSR1, ...} ---``
    :ivar unfinished: an earlier entry of the same thread whose exit never came (execve, or
        a return through IRET), reported with this event; it carries its own task, address
        space and time
    """

    direction: str
    vcpu: int
    timestamp_ns: int
    cr3: int
    rip: int
    task: Task | None
    nr: int | None
    name: str | None
    args: tuple[int, ...] | None
    values: list[Value | None] | None = None
    ret: int | None = None
    ret_text: str | None = None
    signal: tuple[str, Value] | None = None
    unfinished: SyscallRecord | None = None
