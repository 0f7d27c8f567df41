"""Raw events to typed records: pairing, filtering and decoding, the same for every backend.

:meth:`Pipeline.process` takes one ABI event (:class:`~libvirt_nitro.abi.event.Event`) with
what the backend could tell at the trap (the guest task, the guest memory of the trapping
address space) and returns its :class:`~.record.SyscallRecord`, or None when the filter drops
it. A backend that can read guest memory while the vCPU waits (the gdbstub) runs it at the
trap, so that buffers and paths are read as they were at the call; for the others (the
kernel backend) the tracer runs it when it drains the ring, with the task and the memory the
kernel captured at the trap when it did (:func:`~libvirt_nitro.abi.capture.from_event`),
else with registers only.
"""

from __future__ import annotations

import operator
from collections import Counter
from typing import TYPE_CHECKING, Any, NamedTuple

from ..abi.event import EVENT_F_LONG_MODE, EVENT_SYSENTER
from ..linux import SYSCALL_ARG_REGS, format_return, to_signed64
from ..strace import Call, DecodeOptions, decode_entry, decode_exit, reread_unreadable, strace_name
from ..strace.structs import hex_c
from .compat import compat_entry, compat_return, x86_64_number
from .filters import Filter
from .pairing import Pairer, pair_keys
from .record import SyscallRecord

if TYPE_CHECKING:
    from ..introspect import Task
    from ..strace.memory import GuestMemory

__all__ = ["Pipeline"]

_FILTERED = object()  # a pending entry the filter dropped: its exit is dropped too
#: The registers of an event the pipeline reads: the trap's, and the six arguments.
_TRAP_REGS = operator.attrgetter("cr3", "rip", "rsp", "rax")
_ARG_REGS = operator.attrgetter(*SYSCALL_ARG_REGS)


class _Trap(NamedTuple):
    """The registers of an event the pipeline looks at, read once."""

    vcpu: int
    timestamp_ns: int
    cr3: int
    rip: int
    rsp: int
    rax: int


class _Pending(NamedTuple):
    """What an exit (or a later leftover line) needs of its entry: the task, the decoded
    call, and where the entry was trapped."""

    task: Task | None
    call: Call
    trap: _Trap
    compat: bool = False  # a 32-bit process's call (:mod:`.compat`)


#: Calls that end their thread (``exit``) or process (``exit_group``): never paired.
_THREAD_EXIT, _PROCESS_EXIT = "exit", "exit_group"
_ENDS = frozenset({_THREAD_EXIT, _PROCESS_EXIT})
_EXEC = frozenset({"execve", "execveat"})


class Pipeline:
    """Turns the raw events of one traced guest into :class:`~.record.SyscallRecord`.

    *filter* selects the calls (all by default); with *decode* the arguments are decoded as
    strace does (*options*: the capture budget, and the failure counts), else records carry
    raw registers only.
    """

    def __init__(
        self,
        filter: Filter | None = None,
        *,
        decode: bool = True,
        options: DecodeOptions | None = None,
    ):
        self.filter = filter or Filter()
        self.decode = decode
        self.options = options or DecodeOptions()
        self._pairer = Pairer()
        self._filter_seen: Filter | None = None  # the filter _filter_all is of
        self._filter_all = False

    @property
    def wants_task(self) -> bool:
        """True when records need the guest task (to decode, or to filter by it)."""
        return self.decode or self.filter.needs_task

    @property
    def failures(self) -> Counter[str]:
        """Decoder failures by system call name (each argument fell back to hex)."""
        return self.options.failures

    def process(
        self, event: Any, task: Task | None = None, memory: GuestMemory | None = None
    ) -> SyscallRecord | None:
        """The record of *event* (an :class:`~libvirt_nitro.abi.event.Event`), made by
        *task* (None: unknown) with *memory* its address space (None: nothing readable);
        None when the filter drops it. An entry without ``EVENT_F_LONG_MODE`` in its flags
        is a 32-bit process's (:mod:`.compat`): producers of 64-bit events set it."""
        regs = event.regs
        trap = _Trap(event.vcpu, event.timestamp_ns, *_TRAP_REGS(regs))
        if event.direction == "enter":
            if not event.flags & EVENT_F_LONG_MODE:
                return self._compat_entry(event, trap, task, memory)
            return self._entry(regs, trap, task, memory)
        return self._exit(regs, trap, task, memory)

    def _record(
        self,
        direction: str,
        trap: _Trap,
        task: Task | None,
        nr: int | None,
        name: str | None,
        args: tuple[int, ...] | None,
        values: list | None = None,
        ret: int | None = None,
        ret_text: str | None = None,
        signal: Any = None,
        unfinished: SyscallRecord | None = None,
    ) -> SyscallRecord:
        # positional, in SyscallRecord's field order: this runs for every event
        return SyscallRecord(
            direction,
            trap.vcpu,
            trap.timestamp_ns,
            trap.cr3,
            trap.rip,
            task,
            nr,
            name,
            args,
            values,
            ret,
            ret_text,
            signal,
            unfinished,
        )

    def _entry(
        self, regs: Any, trap: _Trap, task: Task | None, memory: Any
    ) -> SyscallRecord | None:
        nr = trap.rax
        keys = pair_keys(task, trap.cr3, trap.rsp, trap.rip + 2)
        previous = self._pairer.take_thread(task, keys[-1])
        if isinstance(previous, _Pending) and task is not None and previous.call.name in _EXEC:
            # The thread runs on after an execve: it succeeded, and the process's other
            # threads are gone.
            self._pairer.drop_process(task.pid)
        flt = self.filter
        if not (self._filter_all if flt is self._filter_seen else self._accepts_all(flt)):
            if not flt.accepts(nr, task, trap.cr3):
                self._remember(keys, _FILTERED, task, strace_name(nr))
                return None
        args = _ARG_REGS(regs)
        if self.decode:
            try:
                call = decode_entry(nr, args, memory, self.options, trap.rsp)
            except Exception:  # noqa: BLE001 - a decoder bug must not lose the event
                call = self._entry_failed(nr, args)
        else:
            call = Call(nr, strace_name(nr), args, [])
        if call.name in _ENDS:
            self._remember(keys, _Pending(task, call, trap), task, call.name)
        else:
            self._pairer.remember(keys, _Pending(task, call, trap), task)
        unfinished = None
        if previous is not None and previous is not _FILTERED:
            unfinished = self._unfinished(previous)
        if self.decode:
            values, ret_text, signal = call.entry_values, call.entry_ret, call.signal
        else:
            values = ret_text = signal = None
        return self._record(
            "enter",
            trap,
            task,
            nr=nr,
            name=call.name,
            args=args,
            values=values,
            ret_text=ret_text,
            signal=signal,
            unfinished=unfinished,
        )

    def _compat_entry(
        self, event: Any, trap: _Trap, task: Task | None, memory: Any
    ) -> SyscallRecord | None:
        """An entry of a 32-bit process: named from the i386 table, arguments raw
        (:mod:`.compat`); the filter's syscalls are matched by name."""
        call = compat_entry(event.regs, event.type == EVENT_SYSENTER, memory)
        keys = pair_keys(task, trap.cr3, trap.rsp, trap.rip + 2)
        previous = self._pairer.take_thread(task, keys[-1])
        if not self.filter.accepts(x86_64_number(call), task, trap.cr3):
            self._remember(keys, _FILTERED, task, call.name)
            return None
        self._remember(keys, _Pending(task, call, trap, compat=True), task, call.name)
        unfinished = None
        if previous is not None and previous is not _FILTERED:
            unfinished = self._unfinished(previous)
        return self._record(
            "enter",
            trap,
            task,
            nr=call.nr,
            name=call.name,
            args=call.args,
            values=call.entry_values if self.decode else None,
            unfinished=unfinished,
        )

    def _accepts_all(self, flt: Filter) -> bool:
        """Whether *flt* (the current :attr:`filter`, seen for the first time) accepts
        every call; remembered until the filter is replaced."""
        self._filter_seen, self._filter_all = flt, flt.empty
        return self._filter_all

    def _remember(self, keys: list, value: Any, task: Task | None, name: str) -> None:
        if name == _THREAD_EXIT:
            if task is not None:
                self._pairer.drop_task(task.tid)
            return
        if name == _PROCESS_EXIT:
            if task is not None:
                self._pairer.drop_process(task.pid)
            return
        self._pairer.remember(keys, value, task)

    def _unfinished(self, pending: _Pending) -> SyscallRecord:
        """A record of an entry whose exit never came, as it was trapped (its own task,
        address space and time)."""
        call = pending.call
        return self._record(
            "enter",
            pending.trap,
            pending.task,
            nr=call.nr,
            name=call.name,
            args=call.args,
            values=call.entry_values if self.decode else None,
            ret_text=self._assumed_return(call),
        )

    def _assumed_return(self, call: Call) -> str | None:
        """What a call whose exit was not seen returned, when its thread running on says it:
        an execve succeeded (``0``), an rt_sigreturn returned its frame's ``rax``."""
        if call.name in _EXEC:
            return "0"
        if call.name == "rt_sigreturn" and self.decode:
            return call.assumed_ret
        return None

    def _exit(self, regs: Any, trap: _Trap, task: Task | None, memory: Any) -> SyscallRecord | None:
        pending = self._pairer.take(pair_keys(task, trap.cr3, trap.rsp, regs.rcx), task)
        if pending is _FILTERED:
            return None
        ret = to_signed64(trap.rax)
        if pending is None:  # entry not seen (traced from the middle of the call)
            if self.filter.syscalls is not None or not self.filter.accepts(None, task, trap.cr3):
                return None
            return self._record(
                "exit",
                trap,
                task,
                nr=None,
                name=None,
                args=None,
                ret=ret,
                ret_text=format_return(ret),
            )
        call = pending.call
        if pending.compat:
            ret = compat_return(trap.rax)
            values, ret_text = (call.entry_values if self.decode else None), format_return(ret)
        elif self.decode:
            try:
                call = reread_unreadable(call, memory, self.options)
                values, ret_text = decode_exit(call, trap.rax, memory, self.options)
            except Exception:  # noqa: BLE001 - as at the entry
                self.options.failures[call.name] += 1
                values, ret_text = [hex_c(arg) for arg in call.args], format_return(trap.rax)
        else:
            values, ret_text = None, format_return(ret)
        return self._record(
            "exit",
            trap,
            task if task is not None else pending.task,
            nr=call.nr,
            name=call.name,
            args=call.args,
            values=values,
            ret=ret,
            ret_text=ret_text,
        )

    def _entry_failed(self, nr: int, args: tuple[int, ...]) -> Call:
        """The call of an entry whose decoder raised: its raw registers, counted."""
        name = strace_name(nr)
        self.options.failures[name] += 1
        return Call(nr, name, args, [hex_c(arg) for arg in args])
