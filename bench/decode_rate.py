"""Decoding speed: strace lines per second of a replayed stream of records.

Builds a stream of raw entry/exit events of common system calls (synthetic, with the guest
memory they point at), runs it through :class:`~libvirt_nitro.pipeline.Pipeline` (pairing
and decoding, as at the traps) and :class:`~libvirt_nitro.output.StraceFormatter` (the
text), and prints the lines per second. A figure, not a test::

    .venv/bin/python bench/decode_rate.py [--seconds S]
"""

from __future__ import annotations

import argparse
import struct
import time

from libvirt_nitro.abi.event import EVENT_SYSCALL, EVENT_SYSRET, Event
from libvirt_nitro.introspect import Task
from libvirt_nitro.output import StraceFormatter
from libvirt_nitro.pipeline import Pipeline
from libvirt_nitro.testing.memory import FakeMemory

CR3, RSP = 0x1A2000, 0x7FFD0000
TASK = Task(pid=400, tid=400, comm="bench")
AT_FDCWD = (-100) & (1 << 64) - 1


STAT = bytearray(144)
struct.pack_into("<I", STAT, 24, 0o100644)
struct.pack_into("<q", STAT, 48, 1274)
MEMORY = FakeMemory(
    {
        0x10000: b"/usr/lib/x86_64-linux-gnu/libc.so.6\0",
        0x20000: b"root:x:0:0:root:/root:/bin/bash\n" * 128,
        0x30000: bytes(STAT),
        0x40000: struct.pack("<qq", 12, 345678),
        0x50000: struct.pack("<ihh", 3, 1, 1) + struct.pack("<ihh", 4, 4, 0),
    }
)

#: (nr, six arguments, return value) of the replayed calls.
CALLS = [
    (257, (AT_FDCWD, 0x10000, 0o2000000, 0, 0, 0), 3),  # openat
    (5, (3, 0x30000, 0, 0, 0, 0), 0),  # fstat
    (0, (3, 0x20000, 4096, 0, 0, 0), 4096),  # read
    (9, (0, 8192, 3, 0x22, (1 << 64) - 1, 0), 0x7F0000000000),  # mmap
    (1, (1, 0x20000, 64, 0, 0, 0), 64),  # write
    (228, (1, 0x40000, 0, 0, 0, 0), 0),  # clock_gettime
    (7, (0x50000, 2, 1000, 0, 0, 0), 1),  # poll
    (202, (0x60000, 0x81, 1, 0, 0, 0), 0),  # futex
    (39, (0, 0, 0, 0, 0, 0), 400),  # getpid
    (3, (3, 0, 0, 0, 0, 0), 0),  # close
]


def event(kind: int, nr_or_ret: int, args: tuple[int, ...], rip: int) -> Event:
    def fill(ev: object) -> None:
        ev.type, ev.vcpu_id, ev.timestamp_ns = kind, 0, 1  # type: ignore[attr-defined]
        regs = ev.regs  # type: ignore[attr-defined]
        regs.cr3, regs.rsp, regs.rax = CR3, RSP, nr_or_ret & (1 << 64) - 1
        if kind == EVENT_SYSCALL:
            regs.rip = rip
            regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = args
        else:
            regs.rip, regs.rcx = 0xFFFFFFFF81000000, rip + 2

    return Event.build(fill)


def stream() -> list[Event]:
    events = []
    for i, (nr, args, ret) in enumerate(CALLS):
        rip = 0x401000 + 16 * i
        events.append(event(EVENT_SYSCALL, nr, args, rip))
        events.append(event(EVENT_SYSRET, ret, args, rip))
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    events = stream()
    pipeline = Pipeline()
    formatter = StraceFormatter()
    lines = 0
    start = time.perf_counter()
    deadline = start + args.seconds
    while time.perf_counter() < deadline:
        for ev in events:
            record = pipeline.process(ev, TASK, MEMORY)
            if record is not None:
                lines += len(formatter.lines(record))
    elapsed = time.perf_counter() - start
    print(f"{lines / elapsed:,.0f} lines/s ({lines} lines in {elapsed:.2f} s)")


if __name__ == "__main__":
    main()
