#!/usr/bin/env python3
"""Benchmark tracing through the gdbstub backend on the test guest (TCG).

Boots its own test guest (or uses --domain), then runs the workload's ``loop N`` (N getpid
system calls) untraced and traced, timed from the host, and prints:

  * events per second and µs per event while traced;
  * RSP packets per event (sent by the tracer to QEMU's stub);
  * the guest slowdown on the syscall loop: traced / untraced host-timed duration, and the
    cost per traced system call (entry + exit).

Usage (as root, libvirtd running, after scripts/setup-host):
    .venv/bin/python bench/gdbstub_trace.py [--syscalls N] [--repeat R] [--domain NAME]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

import libvirt

from libvirt_nitro import EVENT_ID_SYSCALL, attach
from libvirt_nitro.testing.guest import (
    ControlPort,
    GuestImage,
    TestGuest,
    control_socket_path,
)

__all__ = ["main"]


def timed_loop(port: ControlPort, syscalls: int) -> float:
    """Host wall time (s) of the guest command ``loop N``."""
    start = time.perf_counter()
    result = port.run("loop", str(syscalls), timeout=3600)
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    return elapsed


def traced_loop(dom, port: ControlPort, syscalls: int) -> tuple[float, int, int]:
    """(host wall time, events, RSP packets) of ``loop N`` while traced."""
    tracer = attach(dom)
    events = [0]
    tracer.eventRegisterAny(EVENT_ID_SYSCALL, lambda *_: events.__setitem__(0, events[0] + 1))
    outcome: dict[str, float] = {}
    worker = threading.Thread(target=lambda: outcome.update(t=timed_loop(port, syscalls)))
    try:
        packets0, events0 = tracer.summary()["packets_sent"], events[0]
        worker.start()
        while worker.is_alive():
            libvirt.virEventRunDefaultImpl()
        tracer.dispatch()
        packets = tracer.summary()["packets_sent"] - packets0
    finally:
        tracer.close()
    return outcome["t"], events[0] - events0, packets


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syscalls", type=int, default=500, help="getpid calls per loop")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--domain", help="a running test guest to use (default: boot one)")
    args = parser.parse_args()

    libvirt.virEventRegisterDefaultImpl()
    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open("qemu:///system")
    timer = libvirt.virEventAddTimeout(50, lambda *_: None, None)
    guest = None
    if args.domain:
        dom = conn.lookupByName(args.domain)
        port = ControlPort(control_socket_path(args.domain))
        port.wait_ready(10)
    else:
        guest = TestGuest.start(conn, f"nitro-bench-{os.getpid()}", GuestImage.build())
        dom, port = guest.dom, guest.port
    try:
        untraced = [timed_loop(port, args.syscalls) for _ in range(args.repeat)]
        traced = [traced_loop(dom, port, args.syscalls) for _ in range(args.repeat)]
    finally:
        libvirt.virEventRemoveTimeout(timer)
        if guest is not None:
            guest.destroy()

    base = statistics.median(untraced)
    wall = statistics.median(t for t, _, _ in traced)
    events = statistics.median(e for _, e, _ in traced)
    packets = statistics.median(p for _, _, p in traced)
    print(f"syscall loop: {args.syscalls} getpid, median of {args.repeat} runs (TCG guest)")
    print(f"  untraced loop (host-timed):  {base * 1e3:9.1f} ms")
    print(f"  traced loop (host-timed):    {wall * 1e3:9.1f} ms  ({events:.0f} events)")
    print(f"  events per second:           {events / wall:9.0f}")
    print(f"  µs per event:                {wall / events * 1e6:9.0f}")
    print(f"  RSP packets per event:       {packets / events:9.2f}")
    print(f"  slowdown traced/untraced:    {wall / base:9.1f}x")
    print(f"  added cost per syscall:      {(wall - base) / args.syscalls * 1e6:9.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
