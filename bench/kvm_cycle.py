#!/usr/bin/env python3
"""Benchmark the userspace Nitro cycle and a bare exit on the real /dev/kvm.

Prints events per second and µs per event of
  * the userspace Nitro cycle through libvirt_nitro.ioctl: #UD breakpoint exit,
    GET_REGS + GET_SREGS + GET_MSRS, event into the ring, SYSCALL completed with
    SET_REGS, KVM_RUN again (libvirt_nitro.testing.kvmvm's NitroCycle);
  * the same without producing events into the ring (cost of the ring);
  * a bare exit: an OUT loop, one KVM_RUN per exit through the same layer.

Usage: python bench/kvm_cycle.py [--events N] [--repeat R]
"""

from __future__ import annotations

import argparse
import sys
import time

from libvirt_nitro.abi.ring import Ring
from libvirt_nitro.ioctl import lib
from libvirt_nitro.testing.kvmvm import NitroCycle, TestVm

__all__ = ["bench_nitro", "bench_bare_exit", "main"]


def bench_nitro(events: int, with_ring: bool) -> float:
    """Seconds for *events* trapped-and-completed SYSCALLs."""
    with TestVm() as tvm:
        ring = Ring(1 << 16) if with_ring else None
        cycle = NitroCycle(tvm, ring)
        cycle.arm()
        cycle.run_until(10)  # warm up (MSR filter exits happen here)
        start = time.perf_counter()
        done = cycle.events
        while cycle.events < done + events:
            cycle.step()
            if ring is not None and len(ring) > ring.slot_count // 2:
                ring.drain()
        return time.perf_counter() - start


def bench_bare_exit(exits: int) -> float:
    """Seconds for *exits* KVM_EXIT_IO exits of an OUT loop."""
    with TestVm() as tvm:
        tvm.set_rip("out_loop")
        vcpu = tvm.vcpu
        for _ in range(10):
            vcpu.run()
        start = time.perf_counter()
        for _ in range(exits):
            if vcpu.run() != lib.KVM_EXIT_IO:
                raise RuntimeError("unexpected exit in the OUT loop")
        return time.perf_counter() - start


def _report(name: str, count: int, seconds: list[float]) -> None:
    best = min(seconds)
    print(f"{name:<34} {count / best:>10.0f} events/s {best / count * 1e6:>8.2f} µs/event")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n, r = args.events, args.repeat
    _report("nitro cycle (event into ring)", n, [bench_nitro(n, True) for _ in range(r)])
    _report("nitro cycle (no ring)", n, [bench_nitro(n, False) for _ in range(r)])
    _report("bare exit (OUT loop, KVM_RUN)", n, [bench_bare_exit(n) for _ in range(r)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
