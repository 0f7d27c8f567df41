"""Which system calls to report: one filter model for ``-e``/``-p``/``--comm``, the
``<nitro:trace>`` element and the kernel's in-kernel syscall bitmap.

A :class:`Filter` selects by system call number, process (thread group id), command name and
address space (CR3). The pipeline applies the whole filter; a backend that can drop events
before they are queued (the kernel's syscall bitmap) is handed the part it can apply
(:meth:`Filter.only`), which saves the event's cost, not its decision.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..introspect import Task

__all__ = ["Filter", "FIELDS"]


@dataclass(frozen=True)
class Filter:
    """Calls to report; a field that is None accepts everything.

    :ivar syscalls: x86-64 system call numbers
    :ivar pids: guest process ids (thread group ids, what ``getpid()`` returns)
    :ivar comms: guest command names (at most 15 bytes, as the kernel keeps them)
    :ivar cr3s: guest page-table roots (CR3): address spaces
    """

    syscalls: frozenset[int] | None = None
    pids: frozenset[int] | None = None
    comms: frozenset[str] | None = None
    cr3s: frozenset[int] | None = None

    @property
    def empty(self) -> bool:
        """True when the filter accepts every call."""
        return all(getattr(self, name) is None for name in FIELDS)

    @property
    def needs_task(self) -> bool:
        """True when deciding needs the guest task (pid or command name)."""
        return self.pids is not None or self.comms is not None

    def only(self, names: frozenset[str]) -> Filter:
        """This filter restricted to the fields *names* (the others accept everything)."""
        return replace(self, **{name: None for name in FIELDS if name not in names})

    def accepts(self, nr: int | None, task: Task | None, cr3: int) -> bool:
        """True when a call *nr* (None: unknown) made by *task* (None: unknown) in the
        address space *cr3* is to be reported."""
        if self.syscalls is not None and nr not in self.syscalls:
            return False
        if self.cr3s is not None and cr3 not in self.cr3s:
            return False
        if self.pids is not None and (task is None or task.pid not in self.pids):
            return False
        return self.comms is None or (task is not None and task.comm in self.comms)


#: The field names of :class:`Filter`.
FIELDS: tuple[str, ...] = tuple(field.name for field in fields(Filter))
