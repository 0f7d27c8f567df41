#!/usr/bin/env python3
"""Benchmark the kernel backend on a real libvirt KVM domain, in the emulated test bed.

Builds the patched modules (kernel/build.sh, cached), boots the bed (kernel/testbed/run)
with the bed's own libvirtd running the test guest as a 2-vCPU KVM domain, and runs
``bench/bed/domain_cost.py`` there: the guest's ``loop N`` (N getpid() timed by the guest)
untraced, under ``strace -f`` inside the guest, and traced by the kernel backend from the
bed's userspace (Python, libvirt's event loop) with asynchronous delivery (the ring drained
by a callback; a consumer that falls behind loses events, counted) and synchronous
delivery (each trapped vCPU waits for the callback). Prints, per mode, the cost per system
call (median and min over the repetitions), what tracing adds to an untraced call, and the
ratios (the goal: the kernel path cheaper per traced call than strace inside the guest).

Every exit of the nested guest is emulated by TCG: absolute figures say nothing about
hardware; the ratios compare work done per call.

Usage (as root, after scripts/setup-host):
    .venv/bin/python bench/bed_domain.py [--syscalls N] [--sync-syscalls M] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kernel_trap import (
    build_modules,
)  # bench/kernel_trap.py: run as a script, bench/ is on sys.path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "kernel"
MODES = ("untraced", "strace_in_guest", "kernel_async", "kernel_sync")


def main(argv: list[str] | None = None) -> int:
    """Build, run the measure in the bed, print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syscalls", type=int, default=20000, help="getpid() per loop")
    parser.add_argument(
        "--sync-syscalls", type=int, default=2000, help="getpid() per loop, synchronous"
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per mode")
    parser.add_argument("--deadline", type=int, default=1800, help="seconds for the bed")
    args = parser.parse_args(argv)

    start = time.monotonic()
    out = build_modules()
    if out is None:
        return 1
    built = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nitro-bench-") as results:
        params = {
            "syscalls": args.syscalls,
            "sync_syscalls": args.sync_syscalls,
            "repeat": args.repeat,
        }
        (Path(results) / "domain_cost_params.json").write_text(json.dumps(params))
        run = subprocess.run(
            [
                KERNEL / "testbed" / "run",
                out,
                str(args.deadline),
                "--results",
                results,
                "--pytest",
                "bench/bed/domain_cost.py",
                "-s",
            ],
            capture_output=True,
            text=True,
            timeout=args.deadline + 120,
            check=False,
        )
        output = Path(results) / "domain_cost.json"
        if not output.exists():
            console = run.stdout.replace("\r", "")
            print(f"the bench did not finish:\n{console[-4000:]}\n{run.stderr}", file=sys.stderr)
            return 1
        figures = json.loads(output.read_text())["runs"]
    ended = time.monotonic()
    report(figures, args, built - start, ended - built)
    return 0


def report(runs: dict[str, list[dict]], args: argparse.Namespace, build_s: float, bed_s: float):
    """Print the table and the ratios of *runs* (``{mode: [{"ns", "calls", ...}]}``)."""
    print(
        f"test guest as a libvirt KVM domain (2 vCPUs) nested in the bed under QEMU TCG; "
        f"loop of {args.syscalls} getpid() ({args.sync_syscalls} synchronous), "
        f"{args.repeat} repetitions; build {build_s:.0f} s, bed {bed_s:.0f} s"
    )
    median = {mode: statistics.median(r["ns"] for r in runs[mode]) for mode in MODES}
    base = median["untraced"]
    print(
        f"{'mode':<17} {'median ns/call':>15} {'min ns/call':>12} {'added ns':>10} "
        f"{'events':>9} {'lost':>8}"
    )
    for mode in MODES:
        values = runs[mode]
        events = sum(r.get("events", 0) for r in values)
        lost = sum(r.get("lost", 0) for r in values)
        counted = mode.startswith("kernel")
        print(
            f"{mode:<17} {median[mode]:>15.0f} {min(r['ns'] for r in values):>12.0f} "
            f"{median[mode] - base:>10.0f} {events if counted else '-':>9} "
            f"{lost if counted else '-':>8}"
        )
    strace_added = median["strace_in_guest"] - base
    print("ratios (medians):")
    for mode in ("strace_in_guest", "kernel_async", "kernel_sync"):
        added = median[mode] - base
        print(
            f"  {mode:<17} {median[mode] / base:>6.2f}x an untraced call; "
            f"added cost {added / strace_added:>6.3f}x strace's"
        )
    verdict = "meets" if median["kernel_async"] < median["strace_in_guest"] else "misses"
    print(f"goal (kernel async cheaper per traced call than strace in the guest): {verdict}")


if __name__ == "__main__":
    sys.exit(main())
