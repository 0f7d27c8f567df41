"""Events as the command line prints them: strace's lines, raw lines, or JSON lines.

With annotations (the default: :mod:`libvirt_nitro.annotate`), a call prints as strace
prints it, once it returned: ``[pid 412 nginx] openat(AT_FDCWD, "/etc/nginx.conf", O_RDONLY)
= 5``; a call that never returns (``exit_group``) prints at entry with ``= ?``; an entry whose
exit was never seen prints as ``<unfinished ...>`` when its thread makes its next call (an
``execve`` that is followed by a call of the same thread succeeded: ``= 0``).

Raw lines (``--raw``, or when events carry no annotation) show each entry and exit:
syscall number and name, the six argument registers (RDI, RSI, RDX, R10, R8, R9) in hex, the
return value, CR3 and RIP. JSON lines carry both views.
"""

from __future__ import annotations

import json
import time
from typing import IO, Any

from .linux import format_return, to_signed64
from .linux.pairing import SyscallPairer
from .strace import format_line, strace_name

__all__ = ["EventPrinter", "ARG_REGS", "NO_RETURN"]

#: The x86-64 Linux syscall argument registers, in order.
ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
#: Calls that do not return to their caller when they succeed.
NO_RETURN = frozenset({"exit", "exit_group"})
_EXEC = frozenset({"execve", "execveat"})


class EventPrinter:
    """Writes each :class:`~libvirt_nitro.abi.event.Event` to *stream*: strace lines (default),
    raw lines (*raw*), or JSON lines (*as_json*).

    Timestamps (CLOCK_MONOTONIC in the event) are printed as wall-clock seconds.
    ``printed`` counts the events written.
    """

    def __init__(self, stream: IO[str] | None, as_json: bool = False, raw: bool = False):
        self.stream = stream
        self.as_json = as_json
        self.raw = raw
        self.pairer = SyscallPairer()
        self.printed = 0
        self._wall_offset = time.time() - time.monotonic_ns() / 1e9

    def record(self, event: Any) -> dict[str, Any]:
        """The JSON record of *event*: vcpu, direction, nr, name, args (entries), ret (exits),
        cr3, rip, time; and with an annotation pid, tid, comm, args_decoded, ret_decoded
        (exits)."""
        regs = event.regs
        record: dict[str, Any] = {
            "vcpu": event.vcpu,
            "direction": event.direction,
            "cr3": regs.cr3,
            "rip": regs.rip,
            "time": round(self._wall_offset + event.timestamp_ns / 1e9, 6),
        }
        if event.direction == "enter":
            nr = regs.rax
            self.pairer.enter(regs.cr3, regs.rsp, regs.rip, nr)
            record["args"] = [getattr(regs, name) for name in ARG_REGS]
        else:
            nr = self.pairer.exit(regs.cr3, regs.rsp, regs.rcx)
            record["ret"] = to_signed64(regs.rax)
        note = event.annotation
        if note is not None:
            if note.nr is not None:
                nr = note.nr
            task = note.task
            record.update(
                pid=task.pid if task else None,
                tid=task.tid if task else None,
                comm=task.comm if task else None,
                args_decoded=note.args_text,
            )
            if event.direction == "exit":
                record["ret_decoded"] = note.ret_text
        record["nr"] = nr
        record["name"] = strace_name(nr) if nr is not None else None
        return record

    def write(self, event: Any) -> None:
        """Print one event (an exit, in strace form, prints its whole call)."""
        assert self.stream is not None
        self.printed += 1
        if self.as_json:
            self.stream.write(json.dumps(self.record(event)) + "\n")
        elif self.raw or event.annotation is None:
            self.stream.write(self._raw_line(event) + "\n")
        else:
            for line in self._strace_lines(event):
                self.stream.write(line + "\n")

    def _raw_line(self, event: Any) -> str:
        record = self.record(event)
        head = f"[vcpu {record['vcpu']}] {record['direction']:<5}"
        tail = f"cr3={record['cr3']:#x} rip={record['rip']:#x}"
        if record["direction"] == "enter":
            args = ", ".join(f"{arg:#x}" for arg in record["args"])
            return f"{head} {record['name']}({args}) nr={record['nr']} {tail}"
        name = record["name"] or "?"
        nr = "?" if record["nr"] is None else record["nr"]
        return f"{head} {name} = {format_return(event.regs.rax)} nr={nr} {tail}"

    def _strace_lines(self, event: Any) -> list[str]:
        prefix = _prefix(event.annotation.task, event.regs.cr3)
        return [f"{prefix} {text}" for _task, text in self.calls(event)]

    def calls(self, event: Any) -> list[tuple[Any, str]]:
        """The calls *event* lets strace's form print, as (task, ``"name(args) = ret"``):
        an exit prints its call, an entry of a call that never returns prints it with
        ``= ?``, and an earlier entry of the same thread whose exit was missed comes first."""
        note = event.annotation
        calls = []
        if note.orphan is not None:
            orphan = note.orphan
            # An execve whose thread runs on succeeded: the new program started.
            ret = "0" if orphan.name in _EXEC else None
            text = format_line(orphan.name, orphan.args_text, ret)
            calls.append((orphan.task, text if ret else text + ")"))
        if event.direction == "enter":
            if note.name in NO_RETURN:
                calls.append((note.task, format_line(note.name, note.args_text, "?")))
        else:
            calls.append((note.task, format_line(note.name or "?", note.args_text, note.ret_text)))
        return calls


def _prefix(task: Any, cr3: int) -> str:
    if task is None:
        return f"[cr3 {cr3:#x}]"
    if task.tid != task.pid:
        return f"[pid {task.pid} tid {task.tid} {task.comm}]"
    return f"[pid {task.pid} {task.comm}]"
