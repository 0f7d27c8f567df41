"""Inside the emulated test bed: the cost of a system call of the test guest, a libvirt KVM
domain (2 vCPUs) of the bed's libvirtd, untraced, under ``strace -f`` inside the guest, and
traced by the kernel backend with asynchronous and synchronous delivery.

Run by ``bench/bed_domain.py`` through the bed's pytest runner (``kernel/testbed/run ...
--pytest bench/bed/domain_cost.py``): the one function here measures and writes
``/run/results/domain_cost.json`` (the results share) for the host script to print. It is a
benchmark, not a test: it checks only that each run completed and saw its events.

Each measure is the guest's own: the workload's ``loop N`` times N getpid() with
CLOCK_MONOTONIC (``loop_ns``); the modes alternate within each repetition, so a change of
load on the host shifts them all alike.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from libvirt_nitro import EVENT_ID_LOST, EVENT_ID_SYSCALL, attach
from libvirt_nitro.testing.guest import GuestImage, TestGuest
from tests.bed.libvirt_bed import GUEST_CPUSET, URI, LibvirtBed, Loop

RESULTS = Path("/run/results")
#: What the host script asks for (``{"syscalls": N, "sync_syscalls": M, "repeat": R}``).
PARAMS = RESULTS / "domain_cost_params.json"
OUTPUT = RESULTS / "domain_cost.json"
GUEST_IMAGE = Path("/var/cache/libvirt-nitro/guest/current")
NAME = "nitro-bed-bench"
#: Seconds for the guest to boot, and for one guest command.
BOOT_DEADLINE = 300.0
COMMAND_DEADLINE = 600.0


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.__stdout__, flush=True)


def _loop_ns(guest: TestGuest, count: int, *prefix: str) -> tuple[float, float]:
    """(ns per getpid() as the guest timed it, seconds the command took seen from here)."""
    command = [*prefix, "/bin/workload", "loop", str(count)] if prefix else ["loop", str(count)]
    begin = time.monotonic()
    result = guest.run(*command, timeout=COMMAND_DEADLINE)
    took = time.monotonic() - begin
    assert result.exit_code == 0, result.output
    assert int(result.values["loop_count"]) == count, result.output
    return int(result.values["loop_ns"]) / count, took


class Counting:
    """A kernel-backend tracer of the domain with a callback counting its events, on
    libvirt's loop (*delivery* ``async`` or ``sync``)."""

    def __init__(self, dom: Any, loop: Loop, delivery: str) -> None:
        self.loop = loop
        self.events = 0
        self.lost = 0
        self.tracer = attach(dom, backend="kernel", delivery=delivery, decode=False)

        def on_event(_c: Any, _d: Any, _event: Any, _o: Any) -> None:
            self.events += 1

        def on_lost(_c: Any, _d: Any, count: int, _o: Any) -> None:
            self.lost += count

        def register() -> None:
            self.tracer.eventRegisterAny(EVENT_ID_SYSCALL, on_event, None)
            self.tracer.eventRegisterAny(EVENT_ID_LOST, on_lost, None)

        loop.call(register)

    def close(self) -> None:
        def close() -> None:
            self.tracer.close()
            self.tracer.dispatch()

        self.loop.call(close)


def test_measure(tmp_path_factory: pytest.TempPathFactory) -> None:
    if os.environ.get("LIBVIRT_NITRO_IN_BED") != "1":
        pytest.skip("runs inside the emulated test bed only (bench/bed_domain.py)")
    import libvirt

    params = json.loads(PARAMS.read_text()) if PARAMS.exists() else {}
    count = int(params.get("syscalls", 20000))
    sync_count = int(params.get("sync_syscalls", 2000))
    repeat = int(params.get("repeat", 5))
    loop = Loop()
    bed = LibvirtBed(tmp_path_factory.mktemp("libvirt"))
    runs: dict[str, list[dict[str, float]]] = {
        "untraced": [],
        "strace_in_guest": [],
        "kernel_async": [],
        "kernel_sync": [],
    }
    try:
        bed.prepare()
        bed.start()
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        conn = libvirt.open(URI)
        image = GuestImage.load(GUEST_IMAGE.resolve())
        guest = TestGuest.start(
            conn,
            NAME,
            image,
            accel="kvm",
            vcpus=2,
            wait=True,
            boot_timeout=BOOT_DEADLINE,
            cpuset=GUEST_CPUSET,  # both vCPUs and QEMU on one bed CPU, as the tests run it
        )
        try:
            _loop_ns(guest, count)  # warm-up: the workload's pages, the guest's caches
            for round_ in range(repeat):
                ns, took = _loop_ns(guest, count)
                runs["untraced"].append({"ns": ns, "wall_s": took, "calls": count})
                ns, took = _loop_ns(guest, count, "/usr/bin/strace", "-f", "-qq", "-o", "/dev/null")
                runs["strace_in_guest"].append({"ns": ns, "wall_s": took, "calls": count})
                for delivery, calls in (("async", count), ("sync", sync_count)):
                    tracer = Counting(guest.dom, loop, delivery)
                    try:
                        ns, took = _loop_ns(guest, calls)
                    finally:
                        tracer.close()
                    assert tracer.events > 0, f"kernel {delivery}: no events"
                    runs[f"kernel_{delivery}"].append(
                        {
                            "ns": ns,
                            "wall_s": took,
                            "calls": calls,
                            "events": tracer.events,
                            "lost": tracer.lost,
                        }
                    )
                _say(
                    f"round {round_ + 1}/{repeat}: "
                    + ", ".join(
                        f"{mode} {values[-1]['ns']:.0f} ns" for mode, values in runs.items()
                    )
                )
        finally:
            guest.destroy()
    finally:
        bed.close()
        loop.close()
    OUTPUT.write_text(json.dumps({"runs": runs, "params": params}, indent=1))
    _say(f"figures written to {OUTPUT}")
