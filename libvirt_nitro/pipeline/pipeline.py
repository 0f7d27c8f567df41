"""Raw events to typed records: pairing, filtering and decoding, the same for every backend.

:meth:`Pipeline.process` takes one ABI event (:class:`~libvirt_nitro.abi.event.Event`) with
what the backend could tell at the trap (the guest task, the guest memory of the trapping
address space) and returns its :class:`~.record.SyscallRecord`, or None when the filter drops
it. A backend that can read guest memory while the vCPU waits (the gdbstub) runs it at the
trap, so that buffers and paths are read as they were at the call; for the others (the
kernel backend) the tracer runs it when it drains the ring, with registers only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..linux import SYSCALL_ARG_REGS, format_return, to_signed64
from ..strace import Call, DecodeOptions, decode_entry, decode_exit, reread_unreadable, strace_name
from ..strace.structs import hex_c
from .filters import Filter
from .pairing import Pairer, pair_keys
from .record import SyscallRecord

if TYPE_CHECKING:
    from ..introspect import Task
    from ..strace.memory import GuestMemory

__all__ = ["Pipeline"]

_FILTERED = object()  # a pending entry the filter dropped: its exit is dropped too


@dataclass(frozen=True)
class _Pending:
    """What an exit needs of its entry."""

    task: Task | None
    call: Call


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
        None when the filter drops it."""
        if event.direction == "enter":
            return self._entry(event, task, memory)
        return self._exit(event, task, memory)

    def _record(self, event: Any, task: Task | None, **fields: Any) -> SyscallRecord:
        regs = event.regs
        return SyscallRecord(
            direction=event.direction,
            vcpu=event.vcpu,
            timestamp_ns=event.timestamp_ns,
            cr3=regs.cr3,
            rip=regs.rip,
            task=task,
            **fields,
        )

    def _entry(self, event: Any, task: Task | None, memory: Any) -> SyscallRecord | None:
        regs = event.regs
        nr = regs.rax
        keys = pair_keys(task, regs.cr3, regs.rsp, regs.rip + 2)
        previous = self._pairer.take(keys)
        if not self.filter.accepts(nr, task, regs.cr3):
            self._pairer.remember(keys, _FILTERED)
            return None
        args = tuple(getattr(regs, name) for name in SYSCALL_ARG_REGS)
        call = self._decode_entry(nr, args, memory)
        self._pairer.remember(keys, _Pending(task, call))
        unfinished = None
        if isinstance(previous, _Pending):
            unfinished = self._unfinished(event, previous)
        return self._record(
            event,
            task,
            nr=nr,
            name=call.name,
            args=args,
            values=call.entry_values if self.decode else None,
            unfinished=unfinished,
        )

    def _unfinished(self, event: Any, pending: _Pending) -> SyscallRecord:
        call = pending.call
        return self._record(
            event,
            pending.task,
            nr=call.nr,
            name=call.name,
            args=call.args,
            values=call.entry_values if self.decode else None,
        )

    def _exit(self, event: Any, task: Task | None, memory: Any) -> SyscallRecord | None:
        regs = event.regs
        pending = self._pairer.take(pair_keys(task, regs.cr3, regs.rsp, regs.rcx))
        if pending is _FILTERED:
            return None
        ret = to_signed64(regs.rax)
        if pending is None:  # entry not seen (traced from the middle of the call)
            if self.filter.syscalls is not None or not self.filter.accepts(None, task, regs.cr3):
                return None
            return self._record(
                event, task, nr=None, name=None, args=None, ret=ret, ret_text=format_return(ret)
            )
        call = pending.call
        values, ret_text = None, format_return(ret)
        if self.decode:
            values, ret_text = self._decode_exit(call, regs.rax, memory)
        return self._record(
            event,
            task if task is not None else pending.task,
            nr=call.nr,
            name=call.name,
            args=call.args,
            values=values,
            ret=ret,
            ret_text=ret_text,
        )

    def _decode_entry(self, nr: int, args: tuple[int, ...], memory: Any) -> Call:
        if not self.decode:
            return Call(nr, strace_name(nr), args, [])
        try:
            return decode_entry(nr, args, memory, self.options)
        except Exception:  # noqa: BLE001 - a decoder bug must not lose the event
            name = strace_name(nr)
            self.options.failures[name] += 1
            return Call(nr, name, args, [hex_c(arg) for arg in args])

    def _decode_exit(self, call: Call, rax: int, memory: Any) -> tuple[list, str]:
        try:
            call = reread_unreadable(call, memory, self.options)
            return decode_exit(call, rax, memory, self.options)
        except Exception:  # noqa: BLE001 - as at the entry
            self.options.failures[call.name] += 1
            return [hex_c(arg) for arg in call.args], format_return(rax)
