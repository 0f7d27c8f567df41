#!/usr/bin/env python3
"""Benchmark reading guest memory: /proc/<qemu>/mem + page walk vs the gdbstub's ``m`` packet.

Boots its own test guest (or uses --domain), and prints µs per 64-byte read of kernel text
(the guest's #UD handler):

  * ``QemuPhysicalMemory.read`` (one pread on /proc/<pid>/mem, no translation);
  * ``VirtualMemory.read`` with a cold translation cache (a new object per read: a 4-level
    walk, i.e. 4 preads of 8 bytes, then the data pread) and a warm one (the data pread);
  * the gdbstub's ``m`` packet (QEMU walks the page tables; the guest must be stopped).

The first three are measured twice: with the guest stopped by the stub, and running (TCG
vCPU threads then compete for the 2 cores).

Usage (as root, libvirtd running, after scripts/setup-host):
    .venv/bin/python bench/guest_memory.py [--reads N] [--domain NAME]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import libvirt

from libvirt_nitro.domain import resolve
from libvirt_nitro.gdbstub.gdbtarget import GdbTarget
from libvirt_nitro.gdbstub.rsp import RspClient
from libvirt_nitro.gdbstub.session import GdbstubSession
from libvirt_nitro.memory import CR4_LA57, QemuPhysicalMemory, VirtualMemory
from libvirt_nitro.testing.guest import GuestImage, TestGuest
from libvirt_nitro.x86 import IDT_GATE_SIZE, VECTOR_UD, idt_gate_offset

__all__ = ["main"]

SIZE = 64


def per_call_us(action: Callable[[], object], reads: int, batches: int = 5) -> float:
    """Median over *batches* of the mean µs per call of *action* (*reads* calls a batch)."""
    means = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(reads):
            action()
        means.append((time.perf_counter_ns() - start) / reads / 1e3)
    return statistics.median(means)


def direct_figures(phys, cr3: int, la57: bool, vaddr: int, reads: int) -> dict[str, float]:
    """µs per 64-byte read: physical, virtual cold, virtual warm."""
    gpa = VirtualMemory(phys, cr3, la57).translate(vaddr)
    warm = VirtualMemory(phys, cr3, la57)
    warm.read(vaddr, SIZE)
    return {
        "phys": per_call_us(lambda: phys.read(gpa, SIZE), reads),
        "cold": per_call_us(lambda: VirtualMemory(phys, cr3, la57).read(vaddr, SIZE), reads),
        "warm": per_call_us(lambda: warm.read(vaddr, SIZE), reads),
    }


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000, help="reads per batch (direct)")
    parser.add_argument("--domain", help="a running test guest to use (default: boot one)")
    args = parser.parse_args()

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open("qemu:///system")
    guest = None
    if args.domain:
        dom = conn.lookupByName(args.domain)
    else:
        guest = TestGuest.start(conn, f"nitro-bench-{os.getpid()}", GuestImage.build())
        dom = guest.dom
    try:
        pid = resolve(dom).pid
        start = time.perf_counter()
        phys = QemuPhysicalMemory.from_domain(dom, pid)
        mapping_ms = (time.perf_counter() - start) * 1e3
        session = GdbstubSession.start(dom, pid, dom.UUIDString())
        try:
            client = RspClient(str(session.socket_path))
            try:
                target = GdbTarget(client)
                regs = target.read_regs(0)
                cr3, la57 = regs["cr3"], bool(regs["cr4"] & CR4_LA57)
                idt = target.idt_base(0)
                gate = target.read_memory(0, idt + VECTOR_UD * IDT_GATE_SIZE, IDT_GATE_SIZE)
                vaddr = idt_gate_offset(gate)
                stub_us = per_call_us(lambda: client.read_memory(vaddr, SIZE), args.reads // 4)
                stopped = direct_figures(phys, cr3, la57, vaddr, args.reads)
            finally:
                client.detach()
        finally:
            session.stop()
        running = direct_figures(phys, cr3, la57, vaddr, args.reads)
        phys.close()
    finally:
        if guest is not None:
            guest.destroy()

    print(f"guest memory reads of {SIZE} bytes at {vaddr:#x} (kernel text), TCG guest")
    print(f"  mapping guest RAM (monitor, once):   {mapping_ms:8.1f} ms  {phys!r}")
    print("                                        stopped   running")
    for key, label in (
        ("phys", "QemuPhysicalMemory.read"),
        ("cold", "VirtualMemory.read, cold cache"),
        ("warm", "VirtualMemory.read, warm cache"),
    ):
        print(f"  {label:<35} {stopped[key]:8.1f}  {running[key]:8.1f}  µs")
    print(f"  {'gdbstub m packet':<35} {stub_us:8.1f}  {'-':>8}  µs (guest must be stopped)")
    print(f"  gdbstub m / VirtualMemory cold:     {stub_us / stopped['cold']:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
