"""Arming proves that breakpoints are delivered before it clears EFER.SCE.

Where QEMU's breakpoints never hit (a KVM guest under nested SVM emulated by TCG), a cleared
SCE kills the guest at its first SYSRET. So :meth:`NitroEngine.arm` resumes the guest with the
breakpoints in and SCE still set, and clears SCE only after one of them hit; otherwise it
removes them all and refuses. First against a scripted :class:`FakeTarget`, then on the real
TCG test guest: a refusal, and a tracer killed while it proves.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from libvirt_nitro import attach, x86
from libvirt_nitro.domain import hmp
from libvirt_nitro.errors import NitroError
from libvirt_nitro.gdbstub.gdbtarget import GdbTarget
from libvirt_nitro.linux.entry import SWAPGS, SYSRET
from libvirt_nitro.trap import engine
from libvirt_nitro.trap.engine import ArmingPlan, NitroEngine, restore_guest
from tests.support import wait_for
from tests.test_trace_cli import ROOT, URI, assert_guest_given_back
from tests.tracing import guest_efers, syscalls_enabled

IDT_BASE = 0xFFFFFE0000000000
UD_HANDLER = 0xFFFFFFFF81800B80
TIMER_HANDLER = UD_HANDLER + 0x370
SYSRETQ = UD_HANDLER - 0x959
SYSRETL = UD_HANDLER + 0xF70
IDLE = 0xFFFFFFFF81001000
EFER = x86.EFER_SCE | 0xD00  # SCE, LME, LMA, NXE


def gate(handler: int, present: bool = True) -> bytes:
    """A 64-bit interrupt gate to *handler* (kernel CS, DPL 0)."""
    return (
        (handler & 0xFFFF).to_bytes(2, "little")
        + (0x10).to_bytes(2, "little")
        + bytes([0, 0x8E if present else 0x0E])
        + (handler >> 16 & 0xFFFF).to_bytes(2, "little")
        + (handler >> 32).to_bytes(4, "little")
        + bytes(4)
    )


class FakeTarget:
    """A stopped 2-vCPU Linux guest as a :class:`~libvirt_nitro.trap.target.TrapTarget`.

    Its breakpoints hit only as scripted: each :meth:`wait_stop` takes the next
    ``(vcpu, rip)`` of :attr:`hits`, and reports no stop when there is none (the timeout
    passed). :attr:`calls` logs what the engine did, in order.
    """

    def __init__(self, hits: list[tuple[int, int]] = (), timer_present: bool = True) -> None:
        self.vcpus = [0, 1]
        self.hits = list(hits)
        self.regs = {v: {"rip": IDLE, "rsp": 0, "cs": 0x10, "efer": EFER} for v in self.vcpus}
        self.memory = {
            IDT_BASE + 6 * 16: gate(UD_HANDLER),
            IDT_BASE + engine.LOCAL_TIMER_VECTOR * 16: gate(TIMER_HANDLER, timer_present),
            SYSRETQ - len(SWAPGS): SWAPGS + b"\x48" + SYSRET,
            SYSRETL - len(SWAPGS): SWAPGS + SYSRET,
        }
        self.inserted: set[int] = set()
        self.calls: list[tuple] = []
        self.running = False

    def read_regs(self, vcpu: int) -> dict[str, int]:
        return dict(self.regs[vcpu])

    def write_state(self, vcpu: int, regs: dict[str, int]) -> None:
        self.calls.append(("write_state", vcpu))
        self.regs[vcpu].update(regs)

    def write_efer(self, vcpu: int, value: int) -> None:
        self.calls.append(("write_efer", vcpu, value))
        self.regs[vcpu]["efer"] = value

    def read_memory(self, vcpu: int, address: int, size: int) -> bytes:
        out = bytearray(size)
        for base, data in self.memory.items():
            for i, byte in enumerate(data):
                if 0 <= base + i - address < size:
                    out[base + i - address] = byte
        return bytes(out)

    def insert_breakpoint(self, address: int) -> None:
        self.calls.append(("insert", address))
        self.inserted.add(address)

    def remove_breakpoint(self, address: int) -> None:
        if address not in self.inserted:
            raise NitroError(f"no breakpoint at {address:#x}")  # as QEMU's E reply
        self.calls.append(("remove", address))
        self.inserted.discard(address)

    def resume(self) -> None:
        self.calls.append(("resume",))
        self.running = True

    def step(self, vcpu: int) -> None:
        self.calls.append(("step", vcpu, self.regs[vcpu]["rip"], self.regs[vcpu]["efer"]))
        self.regs[vcpu]["rip"] += 3

    def wait_stop(self, timeout: float) -> int | None:
        self.calls.append(("wait_stop", timeout))
        if not self.hits:
            return None
        vcpu, rip = self.hits.pop(0)
        self.regs[vcpu]["rip"] = rip
        self.running = False
        return vcpu

    def interrupt(self) -> int | None:
        self.calls.append(("interrupt",))
        self.running = False
        return 0

    def idt_base(self, vcpu: int) -> int:
        return IDT_BASE

    def named(self, name: str) -> list[tuple]:
        """The logged calls of one kind."""
        return [call for call in self.calls if call[0] == name]


def arming(target: FakeTarget, proof_timeout: float = 10.0) -> tuple[NitroEngine, ArmingPlan]:
    """A planned engine on *target* (nothing armed yet) that fails the test on any event."""
    eng = NitroEngine(
        target, lambda event: pytest.fail(f"event while arming: {event}"), proof_timeout
    )
    return eng, eng.plan_arming()


def test_plan_has_the_timer_handler_as_proof() -> None:
    _, plan = arming(FakeTarget())
    assert plan.ud_handler == UD_HANDLER
    assert [site.address for site in plan.sysret_sites] == [SYSRETQ, SYSRETL]
    assert plan.proof_site == TIMER_HANDLER
    assert len(plan.breakpoints) <= engine.MAX_BREAKPOINTS
    assert ArmingPlan.from_json(plan.as_json()) == plan


def test_no_proof_site_without_a_timer_gate() -> None:
    _, plan = arming(FakeTarget(timer_present=False))
    assert plan.proof_site is None
    assert sorted(plan.breakpoints) == sorted([UD_HANDLER, SYSRETQ, SYSRETL])


def test_no_stop_refuses_and_leaves_the_guest_untouched() -> None:
    target = FakeTarget()
    eng, plan = arming(target, proof_timeout=7.5)
    with pytest.raises(NitroError) as refused:
        eng.arm(plan)
    message = str(refused.value)
    assert "\n" not in message and "not delivered" in message and "untouched" in message
    assert target.named("write_efer") == [] and target.named("write_state") == []
    inserted = {call[1] for call in target.named("insert")}
    assert inserted == {UD_HANDLER, SYSRETQ, SYSRETL, TIMER_HANDLER}
    assert target.inserted == set()  # every one removed
    assert target.named("wait_stop") and all(c[1] <= 7.5 for c in target.named("wait_stop"))
    # Interrupted before the breakpoints went, and left stopped for the caller to detach.
    assert target.calls.index(("interrupt",)) < target.calls.index(("remove", UD_HANDLER))
    assert not target.running
    calls = len(target.calls)
    eng.disarm()  # nothing armed: touches nothing
    assert len(target.calls) == calls


def test_a_stop_elsewhere_is_no_proof() -> None:
    target = FakeTarget(hits=[(1, IDLE + 0x40)])
    eng, plan = arming(target)
    with pytest.raises(NitroError, match="not delivered"):
        eng.arm(plan)
    assert len(target.named("resume")) == 2  # resumed after the stranger stop
    assert target.named("write_efer") == [] and target.inserted == set()


@pytest.mark.parametrize(
    "hit, stepped",
    [(SYSRETQ, True), (SYSRETL, True), (UD_HANDLER, True), (TIMER_HANDLER, False)],
    ids=["sysretq", "sysretl", "genuine-ud", "timer"],
)
def test_one_stop_proves_then_sce_is_cleared(hit: int, stepped: bool) -> None:
    target = FakeTarget(hits=[(1, hit)])
    eng, plan = arming(target)
    eng.arm(plan)
    # A trap site ran natively (SCE still set), before any EFER was written.
    steps = target.named("step")
    assert steps == ([("step", 1, hit, EFER)] if stepped else [])
    first_efer_write = target.calls.index(target.named("write_efer")[0])
    assert all(target.calls.index(step) < first_efer_write for step in steps)
    assert target.named("write_efer") == [
        ("write_efer", vcpu, EFER & ~x86.EFER_SCE) for vcpu in target.vcpus
    ]
    assert target.inserted == {UD_HANDLER, SYSRETQ, SYSRETL}  # the proof breakpoint went
    assert eng.counts == {"syscall": 0, "sysret": 0, "genuine_ud": 0, "native_steps": 0}
    assert not target.running  # stopped, armed: the caller resumes
    eng.disarm()
    assert all(target.regs[vcpu]["efer"] == EFER for vcpu in target.vcpus)
    assert target.inserted == set()


def test_guard_restore_during_the_proof_removes_all_and_writes_no_efer() -> None:
    """What the guard does for a tracer that died while proving: the plan it was sent
    removes every breakpoint, the proof's too; EFER, never cleared, is not written."""
    target = FakeTarget()
    _, plan = arming(target)
    for address in plan.breakpoints:
        target.insert_breakpoint(address)
    assert restore_guest(target, ArmingPlan.from_json(plan.as_json())) == []
    assert target.inserted == set() and target.named("write_efer") == []


# -- on the real TCG test guest --------------------------------------------------------------


def never_executed(address: int) -> int:
    """*address* made non-canonical: a breakpoint there never hits (breakpoints that QEMU
    accepts but never delivers, as under nested SVM)."""
    return address ^ 1 << 63


def test_refusal_on_qemu_leaves_the_guest_untouched(tcg_guest, monkeypatch) -> None:
    insert, remove = GdbTarget.insert_breakpoint, GdbTarget.remove_breakpoint
    monkeypatch.setattr(engine, "PROOF_TIMEOUT", 1.0)
    monkeypatch.setattr(GdbTarget, "insert_breakpoint", lambda t, a: insert(t, never_executed(a)))
    monkeypatch.setattr(GdbTarget, "remove_breakpoint", lambda t, a: remove(t, never_executed(a)))
    outcome: dict[str, Any] = {}

    def arm() -> None:
        try:
            outcome["tracer"] = attach(tcg_guest.dom, backend="gdbstub")
        except NitroError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=arm, daemon=True)
    worker.start()
    efers: list[int] = []

    def refused() -> bool:
        efers.extend(guest_efers(tcg_guest.dom))  # sampled all along the proof
        return not worker.is_alive()

    wait_for(refused, "arming to give up", timeout=60)
    monkeypatch.undo()
    if "tracer" in outcome:
        outcome["tracer"].close()
        pytest.fail("armed although no breakpoint could hit")
    message = str(outcome["error"])
    assert "\n" not in message and "not delivered" in message, message
    assert efers and all(efer & x86.EFER_SCE for efer in efers)
    assert_guest_given_back(tcg_guest)


# A tracer that hangs right after it resumed the guest to prove its breakpoints (the real
# ones: the guest then stops at the timer handler's) and says so.
PROVING_TRACER = """
import sys, threading, libvirt
from libvirt_nitro import attach
from libvirt_nitro.gdbstub.gdbtarget import GdbTarget

def wait_stop(self, timeout):
    print("proving", flush=True)
    threading.Event().wait()

GdbTarget.wait_stop = wait_stop
attach(libvirt.open(sys.argv[1]).lookupByName(sys.argv[2]), backend="gdbstub")
"""


def test_tracer_killed_while_proving_leaves_the_guest_untouched(tcg_guest) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PROVING_TRACER, URI, tcg_guest.name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = wait_for_line(proc.stdout)
        assert line == "proving\n", (line, proc.poll())
        # A breakpoint hit (the proof's, on the timer's handler) stops the guest, SCE set.
        wait_for(lambda: "debug" in hmp(tcg_guest.dom, "info status"), "a breakpoint hit")
        assert syscalls_enabled(tcg_guest.dom)
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)  # EOF once the guard is done too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    # The guard dropped the breakpoints (the guest runs again) and had no EFER to restore.
    given_back = [line for line in stderr.splitlines() if "guest given back" in line]
    assert given_back and "EFER" not in given_back[0], stderr
    assert_guest_given_back(tcg_guest)


def wait_for_line(stream, timeout: float = 60) -> str:
    """The next line of *stream*, read with a deadline ("" at end of file)."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    wait_for(lambda: not reader.is_alive(), "a line from the tracer", timeout=timeout)
    return lines[0]
