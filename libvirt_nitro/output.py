"""Events as the command line prints them: one text line, or one JSON object, each.

Entry lines carry the syscall number (RAX), its name (from the guest ABI's table) and the six
argument registers (RDI, RSI, RDX, R10, R8, R9); exit lines the return value (RAX) and the
number of the entry they pair with (:mod:`libvirt_nitro.linux.pairing`).
"""

from __future__ import annotations

import json
import time
from typing import IO, Any

from .linux import format_return, syscall_name, to_signed64
from .linux.pairing import SyscallPairer

__all__ = ["EventPrinter", "ARG_REGS"]

#: The x86-64 Linux syscall argument registers, in order.
ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")


class EventPrinter:
    """Writes each :class:`~libvirt_nitro.event.Event` to *stream* as text or JSON lines.

    Timestamps (CLOCK_MONOTONIC in the event) are printed as wall-clock seconds.
    """

    def __init__(self, stream: IO[str], as_json: bool = False):
        self.stream = stream
        self.as_json = as_json
        self.pairer = SyscallPairer()
        self.printed = 0
        self._wall_offset = time.time() - time.monotonic_ns() / 1e9

    def record(self, event: Any) -> dict[str, Any]:
        """The JSON record of *event* (keys: vcpu, direction, nr, name, args, ret, cr3, rip,
        time; ``ret`` only on exits, ``args`` only on entries)."""
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
        record["nr"] = nr
        record["name"] = syscall_name(nr) if nr is not None else None
        return record

    def write(self, event: Any) -> None:
        """Print one event."""
        record = self.record(event)
        self.printed += 1
        if self.as_json:
            self.stream.write(json.dumps(record) + "\n")
            return
        head = f"[vcpu {record['vcpu']}] {record['direction']:<5}"
        tail = f"cr3={record['cr3']:#x} rip={record['rip']:#x}"
        if record["direction"] == "enter":
            args = ", ".join(f"{arg:#x}" for arg in record["args"])
            line = f"{head} {record['name']}({args}) nr={record['nr']} {tail}"
        else:
            name = record["name"] or "?"
            nr = "?" if record["nr"] is None else record["nr"]
            line = f"{head} {name} = {format_return(event.regs.rax)} nr={nr} {tail}"
        self.stream.write(line + "\n")
