"""Trap-time annotation: who made a system call, and its arguments as strace shows them.

An :class:`Annotator` runs in the backend's thread at each trap, while the trapping vCPU is
stopped, so that the guest memory it reads (paths, buffers, structs) and the running task it
names are those of the moment of the call, not of some later moment when the event is
printed. Entries and exits are paired per guest thread (the kernel may move a thread to
another vCPU between them); without the kernel's layout, by address space, stack pointer and
return address instead. Filters (``-e trace=``, ``-p``, ``--comm``) apply here, before an
event is queued: a filtered call costs its trap but nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .introspect import GuestIntrospection, Task
from .linux import format_return
from .strace import Call, DecodeOptions, decode_entry, decode_exit
from .strace.structs import hex_c

__all__ = ["Annotation", "Annotator", "Filters"]

#: The x86-64 Linux syscall argument registers, in order.
ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
#: CR4 bit of 5-level paging.
CR4_LA57 = 1 << 12
#: Entries kept waiting for their exit, per annotator.
MAX_PENDING = 4096
_FILTERED = object()  # marks a pending entry whose exit must be dropped too


@dataclass(frozen=True)
class Filters:
    """Which calls to report: syscall numbers, process ids (thread group), command names.
    None accepts everything."""

    syscalls: frozenset[int] | None = None
    pids: frozenset[int] | None = None
    comms: frozenset[str] | None = None

    @property
    def by_task(self) -> bool:
        """True when the filter needs to know the task."""
        return self.pids is not None or self.comms is not None

    def accepts(self, nr: int | None, task: Task | None) -> bool:
        """True when a call *nr* made by *task* is to be reported."""
        if self.syscalls is not None and nr not in self.syscalls:
            return False
        if self.pids is not None and (task is None or task.pid not in self.pids):
            return False
        if self.comms is not None and (task is None or task.comm not in self.comms):
            return False
        return True


@dataclass
class Annotation:
    """What the annotator adds to one event.

    On an entry: ``args_text`` holds the arguments decodable at entry, as strace prints an
    unfinished call, ``ret_text`` is None. On an exit: ``args_text`` the complete arguments,
    ``ret_text`` the return value (``"3"``, ``"-1 ENOENT (No such file or directory)"``).
    ``nr``/``name`` are None for an exit whose entry was not seen. ``orphan`` is an earlier
    entry of the same thread whose exit never came (execve, or a return through IRET).
    """

    task: Task | None
    nr: int | None
    name: str | None
    args_text: str | None
    ret_text: str | None = None
    orphan: Annotation | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Annotator:
    """Annotates the :class:`~libvirt_nitro.trap.engine.TrapEvent` of one guest."""

    def __init__(
        self,
        introspection: GuestIntrospection,
        filters: Filters | None = None,
        options: DecodeOptions | None = None,
    ):
        self.introspection = introspection
        self.filters = filters or Filters()
        self.options = options or DecodeOptions()
        self._pending: dict[tuple, Any] = {}

    def close(self) -> None:
        """Release the introspection's resources."""
        self.introspection.close()

    def annotate(self, trap: Any) -> Annotation | None:
        """Annotate one trap; None when the filters drop it (nothing is to be queued)."""
        intro = self.introspection
        intro.forget()  # the guest ran since the last trap: its page tables may have changed
        regs = trap.regs
        cr3, la57 = regs["cr3"], bool(regs["cr4"] & CR4_LA57)
        task = intro.current_task(cr3, regs["k_gs_base"], la57)
        memory = intro.memory(cr3, la57)
        if trap.kind == "syscall":
            return self._entry(regs, task, memory)
        return self._exit(regs, task, memory)

    def _entry(self, regs: dict[str, int], task: Task | None, memory: Any) -> Annotation | None:
        nr = regs["rax"]
        keys = _keys(task, regs["cr3"], regs["rsp"], regs["rip"] + 2)
        previous = self._take(keys)
        orphan = self._unfinished(previous, task) if isinstance(previous, Call) else None
        if not self.filters.accepts(nr, task):
            self._remember(keys, _FILTERED)
            return None
        call = decode_entry(nr, [regs[name] for name in ARG_REGS], memory, self.options)
        self._remember(keys, call)
        return Annotation(task, nr, call.name, call.entry_args_text(), orphan=orphan)

    def _exit(self, regs: dict[str, int], task: Task | None, memory: Any) -> Annotation | None:
        call = self._take(_keys(task, regs["cr3"], regs["rsp"], regs["rcx"]))
        if call is _FILTERED:
            return None
        if call is None:  # entry not seen (traced from the middle of the call)
            if self.filters.syscalls is not None or not self.filters.accepts(None, task):
                return None
            return Annotation(task, None, None, "?", format_return(regs["rax"]))
        call = self._reread_unreadable(call, memory)
        args_text, ret_text = decode_exit(call, regs["rax"], memory, self.options)
        return Annotation(task, call.nr, call.name, args_text, ret_text)

    def _reread_unreadable(self, call: Call, memory: Any) -> Call:
        """*call* with the entry arguments that could not be read at entry (their pointer
        printed instead) read again now. A page the guest had not touched yet is not mapped
        at the entry (a path in a program's data just after execve); the kernel touched it
        while serving the call, so it can be read at the exit."""
        fallbacks = [
            text == hex_c(value) for text, value in zip(call.entry_text, call.args, strict=False)
        ]
        if not any(fallbacks):
            return call
        fresh = decode_entry(call.nr, call.args, memory, self.options)
        texts = [
            new if fallback else old
            for old, new, fallback in zip(call.entry_text, fresh.entry_text, fallbacks, strict=True)
        ]
        return Call(call.nr, call.name, call.args, texts)

    def _unfinished(self, call: Call, task: Task | None) -> Annotation:
        return Annotation(task, call.nr, call.name, call.entry_args_text())

    def _remember(self, keys: list[tuple], value: Any) -> None:
        entry = (keys, value)
        for key in keys:
            self._pending[key] = entry
        while len(self._pending) > MAX_PENDING:
            self._take([next(iter(self._pending))])

    def _take(self, keys: list[tuple]) -> Any:
        """The pending entry under the first of *keys* found, removed under all its keys."""
        for key in keys:
            entry = self._pending.get(key)
            if entry is not None:
                for alias in entry[0]:
                    self._pending.pop(alias, None)
                return entry[1]
        return None


def _keys(task: Task | None, cr3: int, rsp: int, return_rip: int) -> list[tuple]:
    """What pairs an entry with its exit: the thread when known, and the call's frame
    (address space, stack pointer, return address), which still pairs them when the
    thread could not be read at one of the two traps."""
    frame = ("frame", cr3, rsp, return_rip)
    return [("tid", task.tid), frame] if task is not None else [frame]
