"""The kernel backend end to end, in the emulated test bed with the patched kvm modules.

A VMM subprocess (:func:`vmm_main`: :mod:`libvirt_nitro.testing.kvmvm`'s long-mode VM whose
guest loops doing SYSCALL with rax = its own counter, run with KVM_RUN, no MSR filter) is
traced by this process: :class:`~libvirt_nitro.nitrokvm.KernelBackend` from its (pid, vm fd)
pair, a :class:`~libvirt_nitro.tracer.Tracer` over the kernel's ring, callbacks registered
with ``eventRegisterAny`` and run by libvirt's default event loop in a thread (no libvirtd).

The VMM answers ``status`` on its stdin with the guest's counter, the markers its #UD and
other fault handlers write (they must stay 0: a SYSCALL that raised a #UD the kernel did not
take, because EFER.SCE was left cleared, would set one and halt the guest) and the exits
KVM_RUN returned (none expected). It exits when its stdin closes.

Run by kernel/testbed/run (``pytest tests/bed`` inside the bed, through
tests/test_kernel_nitro.py); elsewhere tests/bed/conftest.py skips every test.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from libvirt_nitro import x86
from libvirt_nitro.attachment import attach_backend
from libvirt_nitro.domain import pidfd_getfd, pidfd_open
from libvirt_nitro.errors import AlreadyTraced
from libvirt_nitro.event_ids import EVENT_ID_LOST, EVENT_ID_SYSCALL
from libvirt_nitro.ioctl import lib
from libvirt_nitro.nitrokvm import (
    TRAP_SYSCALL,
    TRAP_SYSRET,
    KernelBackend,
    NitroFd,
)
from tests.bed.libvirt_bed import Loop
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
#: Seconds to wait for something the guest or the tracer does (everything is emulated).
DEADLINE = 120.0


# ------------------------------------------------------------------ the VMM
def vmm_main() -> None:
    """The VMM subprocess: run the test VM's SYSCALL loop; print ``{"pid", "vm_fd",
    "symbols"}`` as JSON, then answer each ``status`` line on stdin with
    ``counter ud_marker fault_marker exits``; exit when stdin closes."""
    from libvirt_nitro.testing.kvmvm import COUNTER, FAULT_MARKER, UD_MARKER, TestVm

    tvm = TestVm(msr_filter=False)
    # Straight into the SYSCALL loop: without the MSR filter the guest's own WRMSR of EFER
    # would #GP (KVM refuses EFER.LME when the vCPU's CPUID has no long mode, and TestVm
    # sets no CPUID).
    tvm.set_rip("syscall_loop")
    exits: list[int] = []

    def run() -> None:
        while True:
            reason = tvm.vcpu.run()
            exits.append(reason)
            if reason == lib.KVM_EXIT_HLT:
                return  # the guest halted in a fault handler: the markers say which

    threading.Thread(target=run, daemon=True).start()
    symbols = {name: tvm.symbols[name] for name in ("syscall_insn", "syscall_entry")}
    print(json.dumps({"pid": os.getpid(), "vm_fd": tvm.vm.fd, "symbols": symbols}), flush=True)
    for _line in sys.stdin:
        counter, ud, fault = (tvm.u64(addr) for addr in (COUNTER, UD_MARKER, FAULT_MARKER))
        print(counter, ud, fault, ",".join(map(str, exits)) or "-", flush=True)
    os._exit(0)  # the vCPU thread is in KVM_RUN: do not wait for it


@dataclass
class Status:
    """What the VMM reports: the guest's SYSCALL counter, its fault markers, KVM_RUN exits."""

    counter: int
    ud_marker: int
    fault_marker: int
    exits: str

    @property
    def healthy(self) -> bool:
        """No fault handler ran and KVM_RUN never returned."""
        return (self.ud_marker, self.fault_marker, self.exits) == (0, 0, "-")


class Lines:
    """The stdout lines of a subprocess, read by a thread, so that every wait has a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put("")  # EOF

    def next(self, what: str) -> str:
        """The next line; fails the test naming *what* if none comes or the process ends."""
        try:
            line = self._lines.get(timeout=DEADLINE)
        except queue.Empty:
            pytest.fail(f"{what}: no answer within {DEADLINE:.0f} s", pytrace=False)
        if not line:
            pytest.fail(f"{what}: the process exited ({self.proc.wait(DEADLINE)})", pytrace=False)
        return line


class Vmm:
    """The VMM subprocess (:func:`vmm_main`)."""

    def __init__(self) -> None:
        code = "from tests.bed.test_kernel_backend import vmm_main; vmm_main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self._lines = Lines(self.proc)
        hello = json.loads(self._lines.next("the VMM starting"))
        self.pid: int = hello["pid"]
        self.vm_fd: int = hello["vm_fd"]
        self.symbols: dict[str, int] = hello["symbols"]

    def status(self) -> Status:
        """Ask the VMM how the guest is doing."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        counter, ud, fault, exits = self._lines.next("the VMM's status").split()
        return Status(int(counter), int(ud), int(fault), exits)

    def wait_progress(self, syscalls: int) -> Status:
        """Wait until the guest made *syscalls* more SYSCALLs, healthy all along."""
        start = self.status().counter

        def probe() -> Status | None:
            status = self.status()
            assert status.healthy, status
            return status if status.counter >= start + syscalls else None

        return wait_for(probe, f"{syscalls} more guest SYSCALLs", timeout=DEADLINE)

    def close(self) -> None:
        """End the VMM (its stdin closes)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def vmm() -> Iterator[Vmm]:
    """One VMM for the module; each test leaves its guest untraced and healthy."""
    machine = Vmm()
    try:
        yield machine
    finally:
        machine.close()


@pytest.fixture
def guest(vmm: Vmm) -> Vmm:
    """The module's VMM, checked healthy and running before the test."""
    vmm.wait_progress(100)
    return vmm


# ------------------------------------------------------------------ the event loop
@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    """libvirt's default event loop in a thread."""
    event_loop = Loop(DEADLINE)
    try:
        yield event_loop
    finally:
        event_loop.close()


class Collector:
    """Callbacks of one tracer: events and loss counts, with the thread that delivered them."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lost: list[int] = []
        self.threads: set[int] = set()
        self.arguments: set[tuple] = set()

    def on_event(self, conn: Any, dom: Any, event: Any, opaque: Any) -> None:
        self.threads.add(threading.get_ident())
        self.arguments.add((conn, dom, opaque))
        self.events.append(event)

    def on_lost(self, conn: Any, dom: Any, count: int, opaque: Any) -> None:
        self.threads.add(threading.get_ident())
        self.lost.append(count)

    def register(self, loop: Loop, tracer: Any) -> None:
        """Register both callbacks on the loop thread: no dispatch comes between them."""

        def register() -> None:
            tracer.eventRegisterAny(EVENT_ID_SYSCALL, self.on_event, "opaque")
            tracer.eventRegisterAny(EVENT_ID_LOST, self.on_lost, "opaque")

        loop.call(register)

    def wait(self, probe: Callable[[], Any], what: str, tracer: Any, vmm: Vmm) -> None:
        """Wait for *probe*; on timeout say what the tracer, its ring and the guest show."""

        def detail() -> str:
            hdr = tracer.ring.header
            return (
                f"{len(self.events)} events, lost {self.lost[-5:]}; ring producer "
                f"{hdr.producer} consumer {hdr.consumer} dropped {hdr.dropped}; "
                f"backend running {tracer.backend.running}; guest {vmm.status()}"
            )

        wait_for(probe, what, timeout=DEADLINE, detail=detail)


def _trace(vmm: Vmm, slot_count: int = 4096) -> Any:
    return attach_backend(KernelBackend(vmm.pid, vmm.vm_fd), slot_count=slot_count)


def _close(loop: Loop, tracer: Any) -> None:
    """Close *tracer* on the loop thread and deliver what its ring still holds."""

    def close() -> None:
        tracer.close()
        tracer.dispatch()  # the ring outlives the nitro fd: its events are still there

    loop.call(close)


def _gaps(events: list[Any]) -> int:
    seqs = [e.seq for e in events]
    return sum(b - a - 1 for a, b in zip(seqs, seqs[1:], strict=False))


# ------------------------------------------------------------------ tests
def test_events_with_registers_reach_callbacks_on_the_loop(loop: Loop, guest: Vmm) -> None:
    tracer = _trace(guest)
    got = Collector()
    try:
        backend = tracer.backend
        assert backend.armed_traps & (TRAP_SYSCALL | TRAP_SYSRET) == TRAP_SYSCALL | TRAP_SYSRET
        assert backend.armed_names[:2] == ["SYSCALL", "SYSRET"]
        assert backend.running and tracer.ring.slot_count == 4096
        got.register(loop, tracer)
        got.wait(lambda: len(got.events) >= 200, "200 events delivered", tracer, guest)
    finally:
        _close(loop, tracer)
    assert not tracer.backend.running
    events = got.events
    assert got.threads == {loop.thread.ident}
    assert got.arguments == {(None, None, "opaque")}
    syms = guest.symbols
    for event in events:
        assert (event.type_name, event.direction, event.vcpu) == ("syscall", "enter", 0)
        assert event.regs.rip == syms["syscall_insn"]
        assert event.regs.lstar == syms["syscall_entry"]
        assert event.regs.cs == 0x08 and event.regs.efer & x86.EFER_SCE  # the guest's own view
        assert event.flags & lib.KVM_NITRO_EVENT_F_LONG_MODE
    # rax is the guest's counter and seq counts every SYSCALL: they move together, and
    # every gap in seq is an event counted as lost.
    assert len({e.regs.rax - e.seq for e in events}) == 1
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert _gaps(events) <= sum(got.lost) == tracer.lost
    stamps = [e.timestamp_ns for e in events]
    assert stamps == sorted(stamps) and stamps[0] > 0
    guest.wait_progress(1000)  # untraced now, and still healthy


def test_ring_overflow_is_reported_as_lost(loop: Loop, guest: Vmm) -> None:
    tracer = _trace(guest, slot_count=4)
    got = Collector()
    try:
        assert tracer.ring.slot_count == 4
        # Nothing drains the ring until the callbacks are registered: it overflows.
        wait_for(lambda: tracer.ring.dropped > 100, "100 events dropped", timeout=DEADLINE)
        got.register(loop, tracer)
        # the 4 events the full ring held, then one stored after the drops
        got.wait(lambda: got.lost and len(got.events) > 4, "loss and events", tracer, guest)
    finally:
        _close(loop, tracer)
    assert sum(got.lost) == tracer.lost == tracer.ring.dropped > 100
    assert [e.seq for e in got.events[:4]] == [0, 1, 2, 3]
    assert got.events[4].seq - 4 >= 100  # where the drops happened
    assert _gaps(got.events) <= sum(got.lost)  # the rest were dropped after the last event
    assert len({e.regs.rax - e.seq for e in got.events}) == 1  # the gaps are the lost SYSCALLs


def test_close_gives_the_guest_back(loop: Loop, guest: Vmm) -> None:
    tracer = _trace(guest)
    got = Collector()
    got.register(loop, tracer)
    got.wait(lambda: len(got.events) >= 20, "20 events", tracer, guest)
    _close(loop, tracer)
    tracer.close()  # idempotent
    # EFER.SCE is the guest's again: its SYSCALLs run natively (with SCE still cleared and
    # no tracer they would raise #UD into its handler, which marks and halts).
    guest.wait_progress(5000)
    # The VM is free at once: a new tracer attaches (here on a VM fd of our own, taken with
    # pidfd_getfd) and finds nothing armed.
    pidfd = pidfd_open(guest.pid)
    vm_fd = pidfd_getfd(pidfd, guest.vm_fd, guest.pid)
    try:
        with NitroFd.attach_vm(vm_fd) as nitro:
            assert nitro.get_traps().traps == 0
    finally:
        os.close(vm_fd)
        os.close(pidfd)


TRACER_PROCESS = """
import sys
from libvirt_nitro.attachment import attach_backend
from libvirt_nitro.nitrokvm import KernelBackend
tracer = attach_backend(KernelBackend(int(sys.argv[1]), int(sys.argv[2])))
print("armed", tracer.backend.armed_traps, flush=True)
sys.stdin.read()
"""


def test_sigkill_of_the_tracer_gives_the_guest_back(guest: Vmm) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", TRACER_PROCESS, str(guest.pid), str(guest.vm_fd)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert Lines(proc).next("the tracer process arming").startswith("armed ")
        guest.wait_progress(1000)  # traced: every SYSCALL trapped and completed
        # A second tracer is refused, with one clear line, and holds nothing after.
        second = KernelBackend(guest.pid, guest.vm_fd)
        with pytest.raises(AlreadyTraced) as info:
            second.open()
        assert "\n" not in str(info.value) and "already traced" in str(info.value)
        assert second.ring is None
        proc.kill()
        proc.wait(DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)
    # The kernel released the traps when the process died: the guest goes on, untraced.
    guest.wait_progress(5000)
    tracer = _trace(guest)
    assert tracer.backend.running
    tracer.close()
