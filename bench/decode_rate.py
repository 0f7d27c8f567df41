"""Decoding speed: strace lines per second of a replayed stream of system calls.

Builds a stream of raw entry/exit events of common system calls (synthetic, with the guest
memory they point at), runs it through :class:`~libvirt_nitro.pipeline.Pipeline` (pairing
and decoding, as at the traps) and :class:`~libvirt_nitro.output.StraceFormatter` (the
text), and prints the lines per second. Two sources:

- ``memory``: each event decoded with the guest memory itself (the gdbstub path);
- ``replay``: a ring of events with trap-time captures (``kvm_nitro_capture.h``, made by
  the reference capture :func:`~libvirt_nitro.abi.capture.capture`, as the kernel writes
  them) drained as the kernel backend drains it: slot bytes, :class:`~.Event`, the task and
  memory of its captures, the pipeline, the formatter.

A figure, not a test::

    .venv/bin/python bench/decode_rate.py [--mode memory|replay] [--seconds S] [--runs N]
        [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import struct
import time
from collections.abc import Callable

from libvirt_nitro.abi.capture import capture, from_event
from libvirt_nitro.abi.event import EVENT_F_LONG_MODE, EVENT_SYSCALL, EVENT_SYSRET, Event
from libvirt_nitro.abi.recipe import ENTRY, EVENT_F_CAPTURE, EXIT
from libvirt_nitro.abi.ring import Ring
from libvirt_nitro.introspect import Task
from libvirt_nitro.output import StraceFormatter
from libvirt_nitro.pipeline import Pipeline
from libvirt_nitro.strace.recipe import recipe_for
from libvirt_nitro.testing.memory import FakeMemory

CR3, RSP = 0x1A2000, 0x7FFD0000
TASK = Task(pid=400, tid=400, comm="bench")
AT_FDCWD = (-100) & (1 << 64) - 1
U64 = (1 << 64) - 1


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


def event(kind: int, nr_or_ret: int, args: tuple[int, ...], rip: int, flags: int = 0) -> Event:
    def fill(ev: object) -> None:
        ev.type, ev.vcpu_id, ev.timestamp_ns = kind, 0, 1  # type: ignore[attr-defined]
        ev.flags = flags | EVENT_F_LONG_MODE  # type: ignore[attr-defined]
        regs = ev.regs  # type: ignore[attr-defined]
        regs.cr3, regs.rsp, regs.rax = CR3, RSP, nr_or_ret & U64
        regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = args
        if kind == EVENT_SYSCALL:
            regs.rip = rip
        else:
            regs.rip, regs.rcx = 0xFFFFFFFF81000000, rip + 2

    return Event.build(fill)


def stream() -> list[Event]:
    """Entry and exit events of :data:`CALLS`."""
    events = []
    for i, (nr, args, ret) in enumerate(CALLS):
        rip = 0x401000 + 16 * i
        events.append(event(EVENT_SYSCALL, nr, args, rip))
        events.append(event(EVENT_SYSRET, ret, args, rip))
    return events


def captured_ring(slots: int = 4096) -> bytes:
    """A full ring (its bytes) of :data:`CALLS` with the captures the kernel would write."""
    recipe = recipe_for(None)
    ring = Ring(slots, slot_size=recipe.slot_size)
    task = (TASK.tid, TASK.pid, TASK.comm.encode())
    while len(ring) < slots:
        for i, (nr, args, ret) in enumerate(CALLS):
            rip = 0x401000 + 16 * i
            regs = list(args) + [RSP]
            for kind, value, when, rax in (
                (EVENT_SYSCALL, nr, ENTRY, 0),
                (EVENT_SYSRET, ret, EXIT, ret & U64),
            ):
                area = capture(recipe, when, nr, regs, rax, MEMORY, task)
                ring.push(event(kind, value, args, rip, EVENT_F_CAPTURE).raw + area)
    return bytes(ring.buffer)


def run_memory(seconds: float) -> tuple[int, float, float]:
    """Decode :func:`stream` with :data:`MEMORY` for *seconds*: (lines, elapsed, CPU
    seconds of this process)."""
    events = stream()
    pipeline = Pipeline()
    formatter = StraceFormatter()
    lines = 0
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for ev in events:
            record = pipeline.process(ev, TASK, MEMORY)
            if record is not None:
                lines += len(formatter.lines(record))
    return lines, time.perf_counter() - start, time.process_time() - cpu


def run_replay(seconds: float, template: bytes | None = None) -> tuple[int, float, float]:
    """Drain and decode copies of :func:`captured_ring` for *seconds* of decoding: (lines,
    elapsed, CPU seconds; the copying of the ring between rounds excluded)."""
    template = template or captured_ring()
    pipeline = Pipeline()
    formatter = StraceFormatter()
    lines = 0
    elapsed = cpu = 0.0
    while elapsed < seconds:
        ring = Ring.from_buffer(bytearray(template))
        start, cpu_start = time.perf_counter(), time.process_time()
        slots, _ = ring.drain()
        for raw in slots:
            ev = Event(raw)
            got = from_event(ev)
            task, memory = got if got is not None else (None, None)
            record = pipeline.process(ev, task, memory)
            if record is not None:
                lines += len(formatter.lines(record))
        elapsed += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
    return lines, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("memory", "replay"), default="memory")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile one run")
    args = parser.parse_args()
    run: Callable[[float], tuple[int, float, float]]
    if args.mode == "replay":
        template = captured_ring()

        def run(seconds: float) -> tuple[int, float, float]:
            return run_replay(seconds, template)
    else:
        run = run_memory
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(run, args.seconds)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    rates, cpu_rates = [], []
    for _ in range(args.runs):
        lines, elapsed, cpu = run(args.seconds)
        rates.append(lines / elapsed)
        cpu_rates.append(lines / cpu)
        print(
            f"{args.mode}: {lines / elapsed:,.0f} lines/s ({lines} lines in {elapsed:.2f} s; "
            f"{lines / cpu:,.0f} lines per CPU second)"
        )
    if args.runs > 1:
        print(
            f"best {max(rates):,.0f}, median {statistics.median(rates):,.0f} lines/s; per CPU "
            f"second best {max(cpu_rates):,.0f}, median {statistics.median(cpu_rates):,.0f}"
        )


if __name__ == "__main__":
    main()
