"""The Nitro trap engine: syscalls caught as #UD, returns caught at SYSRET, completed by hand.

Arming, on every vCPU of a stopped guest:

1. find the #UD handler (IDT vector 6) and every SYSRET of the guest kernel
   (:func:`~libvirt_nitro.linux.entry.find_sysret_sites`) — refuse to arm without a SYSRETQ;
2. set breakpoints on the #UD handler and the SYSRET sites, and a temporary one on the
   local APIC timer's handler (IDT vector 0xEC);
3. prove that breakpoints are delivered: resume the guest, SCE still set, and wait for one
   of them to hit. Where they are not (seen: a KVM guest under nested SVM emulated by QEMU
   TCG), a cleared SCE would make the guest's first SYSRET raise #UD in its kernel and kill
   it; so after :data:`PROOF_TIMEOUT` s without a hit every breakpoint is removed, EFER is
   left as it was and arming is refused. An idle guest may make no system call for minutes,
   but its timer interrupt comes within milliseconds (a tickless kernel still programs the
   timer for its next event), so the timer breakpoint proves an idle host as well;
4. clear EFER.SCE, so that SYSCALL raises #UD — and so would SYSRET, which is why every
   SYSRET has its breakpoint before SCE is cleared and is never executed with SCE clear.

At a stop on the #UD handler the exception frame tells where the guest faulted. If the
instruction there is SYSCALL (``0F 05``) in user mode, an **entry** event is recorded with the
user registers and the SYSCALL is completed by writing its architectural result (RCX, R11,
RIP = LSTAR, RFLAGS & ~FMASK, CS/SS from STAR) in one atomic register write. Anything else is
a genuine #UD: the handler runs untouched (the breakpoint is stepped over).

At a stop on a SYSRET an **exit** event is recorded (RAX holds the return value) and SYSRET
is completed the same way (RIP = RCX, RFLAGS from R11, user CS/SS from STAR).

LSTAR, STAR and FMASK are not readable through every backend (QEMU's gdbstub has no MSRs),
so each vCPU learns them from its first trapped SYSCALL: the vCPU is put back in user mode
before the instruction, SCE is set on that vCPU only, the instruction is single-stepped and
the result read back. A compat-mode SYSCALL (32-bit process; its CSTAR is never learned) is
always executed that way, as is a SYSRET before STAR's user selectors are known.

Disarming — by the engine, or by the guard after the tracer died — puts back every vCPU's
EFER, removes the breakpoints, and rewinds a vCPU caught between a SYSCALL's #UD and its
completion to the SYSCALL instruction itself, which then runs natively
(:func:`restore_guest`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import x86
from ..errors import NitroError
from ..linux.entry import SCAN_RADIUS, SysretSite, find_sysret_sites
from .target import TrapTarget

__all__ = [
    "NitroEngine",
    "TrapEvent",
    "VcpuFacts",
    "ArmingPlan",
    "restore_guest",
    "read_ud_frame",
    "UdFrame",
]

log = logging.getLogger(__name__)

#: Single-steps tried on a native SYSCALL/SYSRET before an unmoved RIP is an error.
NATIVE_STEP_TRIES = 3
#: How long arming waits for the first breakpoint hit before refusing (s).
PROOF_TIMEOUT = 10.0
#: IDT vector of the local APIC timer interrupt (Linux: LOCAL_TIMER_VECTOR).
LOCAL_TIMER_VECTOR = 0xEC
#: Breakpoints QEMU can hold at once: under KVM, the 4 debug registers (DESIGN.md §4).
MAX_BREAKPOINTS = 4

U64 = (1 << 64) - 1
#: Every RFLAGS bit SYSCALL's FMASK can clear (all but the fixed bit 1).
FLAG_BITS = 0x3F7FD5


@dataclass(frozen=True)
class UdFrame:
    """The frame a #UD pushed on the kernel stack (no error code): where it faulted."""

    rip: int
    cs: int
    rflags: int
    rsp: int
    ss: int

    @property
    def from_user(self) -> bool:
        """True when the fault happened at CPL 3."""
        return self.cs & 3 == 3

    def faulting_state(self, regs: dict[str, int]) -> dict[str, int]:
        """*regs* (read at the handler) as they were at the faulting instruction: its RIP,
        CS, SS, RSP and RFLAGS (without the RF the fault saved)."""
        return dict(
            regs,
            rip=self.rip,
            cs=self.cs,
            ss=self.ss,
            rsp=self.rsp,
            eflags=self.rflags & ~x86.RFLAGS_RF,
        )

    def is_user_syscall(self, target: TrapTarget, vcpu: int) -> bool:
        """True when a user-mode SYSCALL instruction raised this #UD."""
        return self.from_user and target.read_memory(vcpu, self.rip, 2) == x86.SYSCALL_INSN


def read_ud_frame(target: TrapTarget, vcpu: int, rsp: int) -> UdFrame:
    """Read the 5-word #UD frame at *rsp* (the kernel stack at the handler's first
    instruction)."""
    words = target.read_memory(vcpu, rsp, 40)
    rip, cs, rflags, user_rsp, ss = (
        int.from_bytes(words[i : i + 8], "little") for i in range(0, 40, 8)
    )
    return UdFrame(rip, cs & 0xFFFF, rflags, user_rsp, ss & 0xFFFF)


@dataclass
class VcpuFacts:
    """What the engine knows of one vCPU: its original EFER, and the MSRs it learned."""

    efer: int
    lstar: int | None = None
    cstar: int | None = None
    #: STAR[47:32] (kernel CS) and STAR[63:48] (user base selector, RPL bits dropped:
    #: SYSRET ORs in 3), as learned.
    kernel_cs: int | None = None
    user_base: int | None = None
    fmask: int = FLAG_BITS

    @property
    def star(self) -> int:
        """STAR as far as known (unknown halves are 0)."""
        return (self.user_base or 0) << 48 | (self.kernel_cs or 0) << 32


@dataclass
class ArmingPlan:
    """Everything the guard needs to give the guest back: addresses and original EFERs.

    ``proof_site`` is the temporary breakpoint that proves breakpoints are delivered (the
    timer interrupt's handler), or None when there is none (no such gate, or no room)."""

    ud_handler: int
    sysret_sites: list[SysretSite]
    efer: dict[int, int]
    proof_site: int | None = None

    @property
    def breakpoints(self) -> list[int]:
        """Every address this plan sets a breakpoint on."""
        sites = [self.ud_handler, *(site.address for site in self.sysret_sites)]
        return sites if self.proof_site is None else [*sites, self.proof_site]

    def as_json(self) -> dict:
        """A JSON-ready dict (sent to the guard)."""
        return {
            "ud_handler": self.ud_handler,
            "sysret_sites": [[s.address, s.rex_w] for s in self.sysret_sites],
            "efer": {str(vcpu): value for vcpu, value in self.efer.items()},
            "proof_site": self.proof_site,
        }

    @classmethod
    def from_json(cls, data: dict) -> ArmingPlan:
        """Inverse of :meth:`as_json`."""
        return cls(
            ud_handler=data["ud_handler"],
            sysret_sites=[SysretSite(a, bool(w)) for a, w in data["sysret_sites"]],
            efer={int(vcpu): value for vcpu, value in data["efer"].items()},
            proof_site=data.get("proof_site"),
        )


@dataclass(frozen=True)
class TrapEvent:
    """One trapped instruction, before it becomes a ``struct kvm_nitro_event``.

    ``regs`` are the registers as the trapped instruction saw them (GDB names), ``kind`` is
    ``"syscall"`` or ``"sysret"``; ``facts`` the vCPU's MSRs as far as learned.
    """

    vcpu: int
    kind: str
    regs: dict[str, int]
    facts: VcpuFacts
    timestamp_ns: int
    long_mode: bool = True
    rex_w: bool = True
    rf_cleared: bool = False


class NitroEngine:
    """Drives one guest through a :class:`TrapTarget`, reporting events to *emit*.

    Use: :meth:`arm` (guest stopped), then :meth:`poll` in a loop, then :meth:`disarm`.
    *proof_timeout* is how long :meth:`arm` waits for a breakpoint to hit (default
    :data:`PROOF_TIMEOUT`).
    """

    def __init__(
        self,
        target: TrapTarget,
        emit: Callable[[TrapEvent], None],
        proof_timeout: float | None = None,
    ):
        self.target = target
        self.emit = emit
        self.proof_timeout = PROOF_TIMEOUT if proof_timeout is None else proof_timeout
        self.plan: ArmingPlan | None = None
        self.facts: dict[int, VcpuFacts] = {}
        self._armed = False  # SCE cleared on every vCPU: stops are traps
        self._sysret: dict[int, SysretSite] = {}
        self.counts = {"syscall": 0, "sysret": 0, "genuine_ud": 0, "native_steps": 0}

    # ----------------------------------------------------------------- arming
    def plan_arming(self) -> ArmingPlan:
        """Find the #UD handler and the SYSRET sites, read every vCPU's EFER (guest
        stopped). Nothing in the guest changes yet.

        :raises NitroError: no SYSRETQ found, or SYSCALL not enabled by the guest.
        """
        target = self.target
        first = target.vcpus[0]
        idt = target.idt_base(first)
        gate = target.read_memory(first, idt + 6 * x86.IDT_GATE_SIZE, x86.IDT_GATE_SIZE)
        ud_handler = x86.idt_gate_offset(gate)
        base = ud_handler - SCAN_RADIUS
        sites = find_sysret_sites(target.read_memory(first, base, 2 * SCAN_RADIUS), base)
        if not any(site.rex_w for site in sites):
            raise NitroError(
                f"no SYSRETQ found near the guest's #UD handler {ud_handler:#x}: not a Linux "
                "x86-64 guest kernel this tracer knows; refusing to clear EFER.SCE"
            )
        efer = {}
        for vcpu in target.vcpus:
            value = target.read_regs(vcpu)["efer"]
            if not value & x86.EFER_SCE:
                raise NitroError(f"vCPU {vcpu}: the guest has not enabled SYSCALL (EFER.SCE=0)")
            efer[vcpu] = value
        proof_site = None
        if len(sites) + 2 <= MAX_BREAKPOINTS:
            timer = idt + LOCAL_TIMER_VECTOR * x86.IDT_GATE_SIZE
            gate = target.read_memory(first, timer, x86.IDT_GATE_SIZE)
            if gate[5] & 0x80:  # present
                proof_site = x86.idt_gate_offset(gate)
        return ArmingPlan(ud_handler, sites, efer, proof_site)

    def arm(self, plan: ArmingPlan) -> None:
        """Set the breakpoints, prove they are delivered, then clear EFER.SCE on every vCPU.

        Called with the guest stopped; it runs meanwhile (the module docstring, step 3) and
        is stopped again on return. No event is recorded before SCE is cleared.

        :raises NitroError: no breakpoint hit within :attr:`proof_timeout`; every breakpoint
            was removed and EFER never written (the guest is left stopped, to be detached).
        """
        self.plan = plan
        self._sysret = {site.address: site for site in plan.sysret_sites}
        for address in plan.breakpoints:
            self.target.insert_breakpoint(address)
        if not self._prove_delivery(plan):
            self.plan = None
            _remove_breakpoints(self.target, plan)
            raise NitroError(
                f"breakpoints are not delivered on this host (none of {len(plan.breakpoints)} "
                f"hit within {self.proof_timeout:g} s), so the trap could never fire: refusing "
                "to arm; the guest was left untouched (EFER.SCE still set)"
            )
        if plan.proof_site is not None:
            self.target.remove_breakpoint(plan.proof_site)
        for vcpu, efer in plan.efer.items():
            self.facts[vcpu] = VcpuFacts(efer=efer)
            self.target.write_efer(vcpu, efer & ~x86.EFER_SCE)
        self._armed = True

    def _prove_delivery(self, plan: ArmingPlan) -> bool:
        """Resume the guest (SCE still set) until one of *plan*'s breakpoints hits; True
        then, with the guest stopped (a vCPU that hit a SYSRET or the #UD handler stepped
        past that instruction). False after :attr:`proof_timeout` s without a hit, the guest
        stopped."""
        target = self.target
        start = time.monotonic()
        deadline = start + self.proof_timeout
        while True:
            target.resume()
            remaining = deadline - time.monotonic()
            vcpu = target.wait_stop(remaining) if remaining > 0 else None
            if vcpu is None:
                target.interrupt()  # a hit racing the deadline is ignored: refusing is safe
                return False
            rip = target.read_regs(vcpu)["rip"]
            if rip in plan.breakpoints:
                break
            log.debug("vCPU %d stopped at %#x while proving breakpoints: resuming", vcpu, rip)
        if rip != plan.proof_site:
            # SCE is still set: the SYSRET (or the genuine #UD's handler) runs natively, and
            # must be past before SCE is cleared.
            self._step_over(vcpu, rip)
        log.debug(
            "breakpoints delivered: vCPU %d hit %#x after %.3f s",
            vcpu,
            rip,
            time.monotonic() - start,
        )
        return True

    # ------------------------------------------------------------------ loop
    def poll(self, timeout: float) -> bool:
        """Wait up to *timeout* s for a stop, handle it and resume; False if none came."""
        vcpu = self.target.wait_stop(timeout)
        if vcpu is None:
            return False
        self.handle_stop(vcpu)
        self.target.resume()
        return True

    def handle_stop(self, vcpu: int) -> None:
        """Handle a stop of the (stopped) guest reported for *vcpu*."""
        regs = self.target.read_regs(vcpu)
        rip = regs["rip"]
        assert self.plan is not None
        if rip == self.plan.ud_handler:
            self._on_ud(vcpu, regs)
        elif rip in self._sysret:
            self._on_sysret(vcpu, regs, self._sysret[rip])
        else:
            log.debug("vCPU %d stopped at %#x, not at a trap: resuming", vcpu, rip)

    def _on_ud(self, vcpu: int, regs: dict[str, int]) -> None:
        frame = read_ud_frame(self.target, vcpu, regs["rsp"])
        if not frame.is_user_syscall(self.target, vcpu):
            self.counts["genuine_ud"] += 1
            self._step_over(vcpu, self.plan.ud_handler)
            return
        facts = self.facts[vcpu]
        user = frame.faulting_state(regs)
        timestamp = time.monotonic_ns()
        if facts.lstar is None or frame.cs != (facts.user_base + 16) | 3:
            self._native_step(vcpu, user, facts)  # learning, or a compat-mode SYSCALL
        else:
            result = x86.syscall_result(
                frame.rip, user["eflags"], facts.star, facts.lstar, facts.fmask
            )
            self.target.write_state(
                vcpu,
                dict(
                    user,
                    rcx=result.rcx,
                    r11=result.r11,
                    rip=result.rip,
                    eflags=result.rflags,
                    cs=result.cs,
                    ss=result.ss,
                ),
            )
        long_mode = frame.cs == ((facts.user_base or 0) + 16) | 3
        self.counts["syscall"] += 1
        self.emit(
            TrapEvent(vcpu, "syscall", user, facts, timestamp, long_mode=long_mode, rf_cleared=True)
        )

    def _on_sysret(self, vcpu: int, regs: dict[str, int], site: SysretSite) -> None:
        facts = self.facts[vcpu]
        event = TrapEvent(
            vcpu, "sysret", regs, facts, time.monotonic_ns(), long_mode=site.rex_w, rex_w=site.rex_w
        )
        if facts.user_base is None:
            self._native_step(vcpu, regs, facts)
        else:
            result = x86.sysret_result(regs["rcx"], regs["r11"], facts.star, site.rex_w)
            self.target.write_state(
                vcpu, dict(regs, rip=result.rip, eflags=result.rflags, cs=result.cs, ss=result.ss)
            )
        self.counts["sysret"] += 1
        self.emit(event)

    def _native_step(self, vcpu: int, before: dict[str, int], facts: VcpuFacts) -> None:
        """Execute the trapped SYSCALL/SYSRET natively (SCE set on this vCPU for one step)
        and learn the MSR values its result reveals."""
        self.counts["native_steps"] += 1
        target = self.target
        target.write_state(vcpu, before)
        target.write_efer(vcpu, facts.efer)
        try:
            for _ in range(NATIVE_STEP_TRIES):
                target.step(vcpu)
                after = target.read_regs(vcpu)
                # A step that executed nothing (seen once under heavy load, RIP unchanged,
                # the instruction still pending) is retried: the state is as before it.
                if after["rip"] != before["rip"]:
                    break
                log.debug("vCPU %d: step at %#x executed nothing; again", vcpu, before["rip"])
        finally:
            target.write_efer(vcpu, facts.efer & ~x86.EFER_SCE)
        if before["cs"] & 3 == 3:  # a SYSCALL: now in the kernel, at LSTAR or CSTAR
            if after["rcx"] != (before["rip"] + x86.SYSCALL_LEN) & U64:
                raise NitroError(
                    f"vCPU {vcpu}: stepping SYSCALL at {before['rip']:#x} ended at "
                    f"{after['rip']:#x} with rcx {after['rcx']:#x}"
                )
            # The kernel's 64-bit entry is followed by its SYSRETQ, the compat one by SYSRETL.
            entry = after["rip"]
            near = [s for s in self._sysret.values() if 0 < s.address - entry < 0x1000]
            if any(site.rex_w for site in near):
                facts.lstar = entry
                facts.user_base = (before["cs"] - 16) & 0xFFFC
            elif near:
                facts.cstar = entry
                facts.user_base = before["cs"] & 0xFFFC
            else:
                log.warning(
                    "vCPU %d: no SYSRET within 4 KiB after the SYSCALL entry %#x", vcpu, entry
                )
            facts.kernel_cs = after["cs"] & ~3
            # Bits still set after SYSCALL are not in FMASK; every other flag bit is
            # treated as masked (Linux masks them all).
            facts.fmask = FLAG_BITS & ~after["eflags"]
        else:  # a SYSRET: now in user mode
            if after["rip"] != before["rcx"] & (U64 if after["cs"] & 3 else 0xFFFFFFFF):
                raise NitroError(f"vCPU {vcpu}: stepping SYSRET ended at {after['rip']:#x}")
            facts.user_base = (after["ss"] - 8) & 0xFFFC

    def _step_over(self, vcpu: int, address: int) -> None:
        """Run the instruction at a breakpoint on *vcpu* (a genuine #UD reaches its handler).

        QEMU steps off a breakpoint at the current instruction without it firing again."""
        self.target.step(vcpu)

    # --------------------------------------------------------------- disarm
    def disarm(self) -> None:
        """Stop the guest, give every vCPU back its EFER, remove the breakpoints, rewind a
        vCPU caught mid-trap. Events of stops still pending are recorded first (once armed:
        a stop while :meth:`arm` was still proving is no trap)."""
        if self.plan is None:
            return
        vcpu = self.target.interrupt()
        if vcpu is not None and self._armed:
            self.handle_stop(vcpu)
        restore_guest(self.target, self.plan)
        self.plan = None
        self._armed = False


def restore_guest(target: TrapTarget, plan: ArmingPlan) -> list[str]:
    """Give a stopped guest back untraced; return what was done, one line per action.

    For each vCPU: one stopped on the #UD handler by a user SYSCALL is rewound to that
    SYSCALL (which then runs natively); EFER gets its original value. Then the
    breakpoints are removed. Safe to run on a guest that was never armed, or twice.
    """
    actions = []
    for vcpu, efer in plan.efer.items():
        regs = target.read_regs(vcpu)
        if regs["rip"] == plan.ud_handler:
            frame = read_ud_frame(target, vcpu, regs["rsp"])
            if frame.is_user_syscall(target, vcpu):
                target.write_state(vcpu, frame.faulting_state(regs))
                actions.append(f"vCPU {vcpu}: rewound to the SYSCALL at {frame.rip:#x}")
        if regs["efer"] != efer:
            target.write_efer(vcpu, efer)
            actions.append(f"vCPU {vcpu}: EFER {regs['efer']:#x} -> {efer:#x}")
    _remove_breakpoints(target, plan)
    return actions


def _remove_breakpoints(target: TrapTarget, plan: ArmingPlan) -> None:
    """Remove every breakpoint of *plan* that is still inserted."""
    for address in plan.breakpoints:
        try:
            target.remove_breakpoint(address)
        except NitroError:
            pass  # not inserted (never armed, removed, or a new gdbstub connection dropped it)
