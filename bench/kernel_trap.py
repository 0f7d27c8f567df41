#!/usr/bin/env python3
"""Benchmark the Nitro kernel trap inside the emulated test bed (nested KVM under QEMU TCG).

Builds the patched modules (kernel/build.sh, cached), boots the bed in bench mode
(``kernel/testbed/run BUILD_DIR DEADLINE --bench``) and runs kernel/testbed/nitro_bench.c
there: a nested guest runs loops of N iterations per KVM_RUN, R repetitions, and prints
per mode the min and median cost per iteration of

  * cpuid: a CPUID loop, a minimal exit handled in the kernel (the floor for any trap);
  * syscall_native: the SYSCALL loop untrapped (no exit);
  * syscall_async_poll / _spin: the SYSCALL loop trapped, asynchronous delivery, a tracer
    thread draining the ring while sleeping in poll() (woken when the ring goes non-empty)
    or spinning (the trap's own cost, no wake-ups);
  * syscall_sync_poll / _spin: synchronous delivery, the tracer answering each event with
    KVM_NITRO_CONTINUE (when the kernel supports KVM_NITRO_DELIVERY_SYNC).

This script prints those figures and the ratios to the CPUID exit (target: a trapped SYSCALL
costs at most 1.5x a CPUID exit).  Every exit is emulated by TCG here, so the absolute
figures say nothing about hardware; the ratios compare work done per exit.

Usage (as root): python bench/kernel_trap.py [--iterations N] [--repeat R]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["build_modules", "main", "parse"]

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "kernel"
#: Target of the issue: a trapped SYSCALL at most this many CPUID exits.
TARGET_RATIO = 1.5

_LINE = re.compile(r"^bench: (\w+) (.*)$")


def parse(console: str) -> dict[str, dict[str, float]]:
    """``{mode: {"min_ns": ..., "median_ns": ..., "events": ..., ...}}`` from the console;
    ``runs_ns`` (ns per iteration of each repetition, in order) is a list."""
    figures = {}
    for line in console.replace("\r", "").splitlines():
        match = _LINE.match(line.strip())
        if match:
            fields = dict(item.split("=", 1) for item in match[2].split())
            runs = [float(x) for x in fields.pop("runs_ns", "").split(",") if x]
            figures[match[1]] = {key: float(value) for key, value in fields.items()}
            figures[match[1]]["runs_ns"] = runs
    return figures


def paired_ratio(mode: dict, base: dict) -> float:
    """Median over the repetitions of *mode*'s cost / *base*'s cost in the same repetition
    (the modes run one after the other in each: a paired ratio shrugs off load changes)."""
    return statistics.median(a / b for a, b in zip(mode["runs_ns"], base["runs_ns"], strict=True))


def build_modules() -> str | None:
    """The patched modules' build directory (kernel/build.sh, cached), or None after
    printing why the build failed."""
    build = subprocess.run(
        [KERNEL / "build.sh"], capture_output=True, text=True, timeout=3600, check=False
    )
    if build.returncode:
        print(f"kernel/build.sh failed:\n{build.stderr[-3000:]}", file=sys.stderr)
        return None
    return build.stdout.split()[-1]


def main(argv: list[str] | None = None) -> int:
    """Build, run the bench in the bed, print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000, help="guest loop iterations")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions per mode")
    parser.add_argument("--deadline", type=int, default=900, help="seconds for the bed")
    args = parser.parse_args(argv)

    start = time.monotonic()
    out = build_modules()
    if out is None:
        return 1
    built = time.monotonic()
    run = subprocess.run(
        [
            KERNEL / "testbed" / "run",
            out,
            str(args.deadline),
            "--bench",
            "-n",
            str(args.iterations),
            "-r",
            str(args.repeat),
        ],
        capture_output=True,
        text=True,
        timeout=args.deadline + 60,
        check=False,
    )
    ended = time.monotonic()
    console = run.stdout.replace("\r", "")
    figures = parse(console)
    if "nitro_bench: done" not in console or "cpuid" not in figures:
        print(f"the bench did not finish:\n{console[-3000:]}\n{run.stderr}", file=sys.stderr)
        return 1

    n, r = args.iterations, args.repeat
    print(f"nested guest under QEMU TCG, {n} iterations per KVM_RUN, {r} repetitions")
    print(f"build {built - start:.0f} s, bed {ended - built:.0f} s")
    print(f"{'mode':<20} {'min µs/it':>10} {'median µs/it':>13} {'events':>8} {'dropped':>8}")
    for mode, fig in figures.items():
        events = f"{fig['events']:.0f}" if mode.startswith("syscall_") else "-"
        print(
            f"{mode:<20} {fig['min_ns'] / 1e3:>10.2f} {fig['median_ns'] / 1e3:>13.2f} "
            f"{events:>8} {fig['dropped']:>8.0f}"
        )
        if fig["bad"]:
            print(f"  {mode}: {fig['bad']:.0f} events did not match the guest's SYSCALL")
    if "sync: not supported by this kernel" in console:
        print("sync: not supported by this kernel")

    cpuid = figures["cpuid"]
    print(
        f"ratios to the CPUID exit (of the minima; median of the per-repetition ratios; "
        f"target <= {TARGET_RATIO}x):"
    )
    for mode, fig in figures.items():
        if mode.startswith("syscall_") and mode != "syscall_native":
            low = fig["min_ns"] / cpuid["min_ns"]
            paired = paired_ratio(fig, cpuid)
            verdict = "meets" if paired <= TARGET_RATIO else "misses"
            print(f"  {mode:<20} {low:>6.2f}x {paired:>6.2f}x  ({verdict} the target)")
    if "syscall_native" in figures:
        for mode in ("syscall_async_poll", "syscall_async_spin"):
            if mode in figures:
                added = figures[mode]["min_ns"] - figures["syscall_native"]["min_ns"]
                print(f"  {mode} adds {added / 1e3:.2f} µs per SYSCALL to the native loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
