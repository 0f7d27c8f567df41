"""The zero-touch path on a real libvirt KVM domain, in the emulated test bed: libvirt-nitro's
hook installed in the bed's libvirt, a 2-vCPU KVM domain started with
``<nitro:trace backend="kernel">`` in its metadata, and no command typed: the hook starts the
service, which traces the domain with the kernel backend into the element's JSON-lines file;
the workload's known sequence is found there event by event; destroying the domain ends the
service cleanly.

The bed's libvirtd is this module's own (:class:`tests.bed.libvirt_bed.LibvirtBed`): the hook
is written into its copy of ``/etc/libvirt`` before it starts, as ``install-hook`` does on a
host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from libvirt_nitro.service import installer
from libvirt_nitro.service.hook import LOG_DIR
from libvirt_nitro.service.metadata import NAMESPACE
from libvirt_nitro.service.status import holder_pid, read_states
from libvirt_nitro.testing.guest import GuestImage, TestGuest
from tests.bed.libvirt_bed import GUEST_CPUSET, URI, LibvirtBed
from tests.bed.test_libvirt_domain import (
    BOOT_DEADLINE,
    GUEST_IMAGE,
    IN_BED,
    VCPUS,
    Workload,
    check_workload,
    run_command,
)
from tests.support import require, wait_for

NAME = "nitro-bed-zero-touch"
#: Seconds for the service to arm the domain after its start (the hook spawns it when QEMU
#: has started; it waits for the hook to return, then attaches).
TRACED_DEADLINE = 240.0
#: Seconds for the service to write what it traced (it flushes its file each loop turn).
WRITTEN_DEADLINE = 120.0
#: Seconds for the service to exit once the domain is destroyed.
EXIT_DEADLINE = 60.0


def trace_element(output: Path) -> str:
    """``<nitro:trace>`` with the kernel backend, raw JSON lines into *output*."""
    return (
        f'<nitro:trace xmlns:nitro="{NAMESPACE}" backend="kernel">'
        f'<nitro:output path="{output}" decode="raw" max-bytes="8388608" max-files="2"/>'
        "</nitro:trace>"
    )


def records(path: Path) -> list[dict]:
    """The JSON lines the service wrote so far (rotated files first)."""
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    lines: list[dict] = []
    for file in [*files, path]:
        if file.exists():
            lines += [json.loads(line) for line in file.read_text().splitlines() if line]
    return lines


def state_of(uuid: str) -> dict | None:
    return next((state for state in read_states() if state.get("uuid") == uuid), None)


@dataclass
class ZeroTouch:
    """The module's libvirtd (with the hook), its domain and the element's output file."""

    bed: LibvirtBed
    conn: Any
    guest: TestGuest
    output: Path

    @property
    def uuid(self) -> str:
        return self.guest.dom.UUIDString()


@pytest.fixture(scope="module")
def zero_touch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZeroTouch]:
    """libvirtd started with libvirt-nitro's hook, and the test guest booted as a transient
    KVM domain with ``<nitro:trace backend="kernel">``; destroyed, and libvirtd stopped,
    after the module."""
    if not IN_BED:
        pytest.skip("runs inside the emulated test bed only (tests/test_kernel_nitro.py)")
    import libvirt

    require(os.geteuid() == 0, "root (the bed's libvirtd)")
    require(GUEST_IMAGE.is_dir(), f"the test guest built on the host ({GUEST_IMAGE})")
    work = tmp_path_factory.mktemp("zero-touch")
    output = work / "events.jsonl"
    bed = LibvirtBed(work)
    try:
        bed.prepare()
        # into the bed's copy of /etc/libvirt, where prepare() removed the host's hooks
        installer.install(python=sys.executable)
        bed.start()
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        conn = libvirt.open(URI)
        image = GuestImage.load(GUEST_IMAGE.resolve())
        guest = TestGuest.start(
            conn,
            NAME,
            image,
            accel="kvm",
            vcpus=VCPUS,
            wait=True,
            boot_timeout=BOOT_DEADLINE,
            metadata=trace_element(output),
            cpuset=GUEST_CPUSET,  # see GUEST_CPUSET: unpinned, the emulator kills it
        )
        try:
            yield ZeroTouch(bed, conn, guest, output)
        finally:
            guest.destroy()
    finally:
        bed.close()


def test_hook_starts_the_kernel_backend_service(zero_touch: ZeroTouch) -> None:
    state = wait_for(
        lambda: (s := state_of(zero_touch.uuid)) and s.get("state") == "tracing" and s,
        "the hook's service to trace the domain",
        timeout=TRACED_DEADLINE,
        interval=1.0,
        detail=lambda: _log_tail(),
    )
    assert state["name"] == NAME and state["backend"] == "kernel", state
    assert state["output"] == str(zero_touch.output)
    pid = holder_pid(zero_touch.uuid)
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    assert "serve" in cmdline and zero_touch.uuid in cmdline, cmdline


def test_the_known_sequence_is_in_the_file(zero_touch: ZeroTouch) -> None:
    wait_for(
        lambda: (state_of(zero_touch.uuid) or {}).get("state") == "tracing",
        "the hook's service to trace the domain",
        timeout=TRACED_DEADLINE,
        interval=1.0,
    )
    guest = zero_touch.guest
    sequence = run_command(guest, "sequence")
    pinned = [
        run_command(
            guest, "/bin/busybox", "taskset", str(1 << vcpu), "/bin/workload", "getpid", "5"
        )
        for vcpu in range(VCPUS)
    ]
    done = Workload(sequence, pinned)
    last_pid = int(pinned[-1].values["getpid"])

    def written() -> list[dict] | None:
        found = records(zero_touch.output)
        ends = [r for r in found if r["direction"] == "exit" and r["ret"] == last_pid]
        return found if len(ends) >= 5 else None

    found = wait_for(
        written, "the workload's last getpid exits in the file", timeout=WRITTEN_DEADLINE
    )
    check_workload(found, done)
    assert (state_of(zero_touch.uuid) or {}).get("dropped") == 0


def test_destroying_the_domain_ends_the_service(zero_touch: ZeroTouch) -> None:
    uuid = zero_touch.uuid
    pid = holder_pid(uuid)
    assert pid is not None, "no service traces the domain"
    begin = time.monotonic()
    zero_touch.guest.destroy()
    wait_for(lambda: holder_pid(uuid) is None, "the service to exit", timeout=EXIT_DEADLINE)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the service process to end", timeout=30)
    assert time.monotonic() - begin < EXIT_DEADLINE
    log = (LOG_DIR / f"serve-{NAME}.log").read_text()
    # one line each with its syslog priority: nothing at error (3) or worse
    assert not [line for line in log.splitlines() if line[:3] in ("<0>", "<1>", "<2>", "<3>")]
    assert "Traceback" not in log, log
    assert records(zero_touch.output), "the file is still there, with the events"


def _log_tail() -> str:
    """The hook's and the service's logs, for a failure message."""
    parts = []
    for path in (LOG_DIR / "hook.log", LOG_DIR / f"serve-{NAME}.log"):
        text = path.read_text(errors="replace") if path.exists() else "(none)"
        parts.append(f"--- {path}:\n{text[-3000:]}")
    done = subprocess.run(["virsh", "-c", URI, "list", "--all"], capture_output=True, text=True)
    return "\n".join([*parts, done.stdout])
