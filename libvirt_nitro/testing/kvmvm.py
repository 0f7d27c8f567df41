"""A tiny 64-bit test VM on the real /dev/kvm, and the userspace Nitro cycle on it.

Built the KVM selftests' way, in layers: :class:`TestVm` creates a VM with one vCPU
and 2 MiB of identity-mapped memory (page tables, GDT, IDT, TSS), puts the vCPU in
long mode at CPL0 directly with KVM_SET_SREGS and loads the guest code assembled from
:data:`GUEST_ASM` (binutils ``as``/``ld``).  The guest reads EFER once (through the MSR
filter: userspace answers with the shadow EFER) and writes it back, then loops doing
SYSCALL with rax = its own counter; its LSTAR entry increments the counter and returns
with ``jmp *%rcx``.  Its #UD handler writes a marker and halts: it must never run.

:class:`NitroCycle` arms the trap (EFER.SCE cleared, hardware breakpoint on the #UD
handler through KVM_SET_GUEST_DEBUG) and, for each KVM_EXIT_DEBUG there, builds the
event from GET_REGS/GET_SREGS/GET_MSRS (:func:`fill_from_kvm`) into a
:class:`~libvirt_nitro.abi.ring.Ring`, completes the SYSCALL architecturally and resumes
the guest.

Test and benchmark support only (:mod:`libvirt_nitro.testing`): the product traces through
the kernel's Nitro fd or QEMU's gdbstub, never through this cycle.
"""

from __future__ import annotations

import functools
import mmap
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import x86
from ..abi.event import EVENT_SYSCALL, REG_NAMES
from ..abi.ring import Ring
from ..backend import Backend
from ..ioctl import Kvm, ffi, lib

__all__ = ["GUEST_ASM", "TestVm", "NitroCycle", "UnexpectedExit", "fill_from_kvm", "guest_image"]

MEM_SIZE = 2 << 20
PML4, PDPT, PD = 0x1000, 0x2000, 0x3000
GDT, IDT, TSS = 0x4000, 0x5000, 0x6000
DATA = 0x7000
COUNTER, EFER_SEEN, UD_MARKER, FAULT_MARKER = DATA, DATA + 8, DATA + 16, DATA + 24
CODE = 0x8000
STACK_TOP = 0x1F0000
CS_SEL, DS_SEL, TSS_SEL = 0x08, 0x10, 0x18
STAR = (0x0013 << 48) | (CS_SEL << 32)
FMASK = 0x47700  # Linux's: TF, IF, DF, NT, AC
SYSENTER_CS, SYSENTER_ESP, SYSENTER_EIP = 0x08, 0x1E0000, 0x12345678

GUEST_ASM = f"""
    .code64
    .globl _start
_start:
    mov $0x{x86.MSR_EFER:x}, %ecx
    rdmsr                           # filtered: userspace answers with the shadow EFER
    mov %eax, 0x{EFER_SEEN:x}
    mov %edx, 0x{EFER_SEEN + 4:x}
    wrmsr                           # filtered: userspace keeps SCE cleared underneath
syscall_loop:
    mov 0x{COUNTER:x}, %rax         # syscall number = the guest's own counter
    .globl syscall_insn
syscall_insn:
    syscall
    jmp syscall_loop

    .p2align 4
    .globl syscall_entry
syscall_entry:                      # LSTAR
    incq 0x{COUNTER:x}
    push %r11
    popfq
    jmp *%rcx

    .p2align 4
    .globl ud_handler
ud_handler:                         # the guest's real #UD handler: must never run
    movq $0xdead, 0x{UD_MARKER:x}
1:  hlt
    jmp 1b

    .p2align 4
    .globl other_fault
other_fault:                        # every other vector
    movq $0xbad, 0x{FAULT_MARKER:x}
1:  hlt
    jmp 1b

    .p2align 4
    .globl ud2_insn
ud2_insn:                           # a genuine #UD, to be delivered to the guest
    ud2

    .p2align 4
    .globl out_loop
out_loop:                           # bare exits for the benchmark
    out %al, $0x10
    jmp out_loop
"""


@functools.cache
def guest_image() -> tuple[bytes, dict[str, int]]:
    """Assemble :data:`GUEST_ASM` linked at CODE: (flat image, {symbol: address})."""
    with tempfile.TemporaryDirectory(prefix="nitro-guest-") as tmp:
        d = Path(tmp)
        (d / "g.S").write_text(GUEST_ASM)
        subprocess.run(["as", "--64", "-o", d / "g.o", d / "g.S"], check=True)
        subprocess.run(
            [
                "ld",
                "-m",
                "elf_x86_64",
                "-Ttext",
                hex(CODE),
                "-e",
                "_start",
                "-o",
                d / "g",
                d / "g.o",
            ],
            check=True,
        )
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", d / "g", d / "g.bin"], check=True)
        nm = subprocess.run(["nm", d / "g"], check=True, capture_output=True, text=True).stdout
        symbols = {}
        for line in nm.splitlines():
            addr, _kind, name = line.split()
            symbols[name] = int(addr, 16)
        return (d / "g.bin").read_bytes(), symbols


def _set_segment(seg: object, selector: int, code: bool) -> None:
    seg.base = 0
    seg.limit = 0xFFFFFFFF
    seg.selector = selector
    seg.type = 0xB if code else 0x3
    seg.present = 1
    seg.dpl = 0
    seg.db = 0 if code else 1
    seg.s = 1
    seg.l = 1 if code else 0
    seg.g = 1
    seg.avl = 0
    seg.unusable = 0


class TestVm:
    """One VM, one vCPU, 2 MiB identity-mapped, long mode, CPL0; a context manager."""

    __test__ = False  # not a pytest class

    def __init__(self, msr_filter: bool = True) -> None:
        self.image, self.symbols = guest_image()
        self.kvm = Kvm.open()
        self.vm = self.kvm.create_vm()
        self.mem = mmap.mmap(-1, MEM_SIZE)
        self._mem_ptr = ffi.from_buffer(self.mem)
        self.vm.set_user_memory_region(0, 0, MEM_SIZE, int(ffi.cast("uintptr_t", self._mem_ptr)))
        if msr_filter:
            # EFER reads and writes exit to userspace (KVM_EXIT_X86_RDMSR/WRMSR)
            self.vm.enable_cap(lib.KVM_CAP_X86_USER_SPACE_MSR, lib.KVM_MSR_EXIT_REASON_FILTER)
            self.vm.set_msr_filter(
                [(lib.KVM_MSR_FILTER_READ | lib.KVM_MSR_FILTER_WRITE, x86.MSR_EFER, 1, b"\0")]
            )
        self.vcpu = self.vm.create_vcpu(0)
        self._write_memory()
        self._setup_vcpu()

    # guest memory (guest-physical == guest-virtual here)
    def read(self, gpa: int, size: int) -> bytes:
        """*size* bytes of guest memory at *gpa*."""
        return self.mem[gpa : gpa + size]

    def u64(self, gpa: int) -> int:
        """The little-endian __u64 at *gpa*."""
        return struct.unpack_from("<Q", self.mem, gpa)[0]

    def _write_memory(self) -> None:
        m = self.mem
        struct.pack_into("<Q", m, PML4, PDPT | 3)
        struct.pack_into("<Q", m, PDPT, PD | 3)
        struct.pack_into("<Q", m, PD, 0x83)  # one 2 MiB page at 0: PS|RW|P
        gdt = [0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF]
        tss_low = 0x67 | ((TSS & 0xFFFFFF) << 16) | (0x89 << 40) | ((TSS >> 24) << 56)
        gdt += [tss_low, TSS >> 32]
        struct.pack_into(f"<{len(gdt)}Q", m, GDT, *gdt)
        for vector in range(256):
            handler = self.symbols["ud_handler" if vector == x86.VECTOR_UD else "other_fault"]
            low = (handler & 0xFFFF) | (CS_SEL << 16) | (0x8E << 40) | ((handler >> 16) << 48)
            struct.pack_into("<QQ", m, IDT + 16 * vector, low & (2**64 - 1), handler >> 32)
        m[CODE : CODE + len(self.image)] = self.image

    def _setup_vcpu(self) -> None:
        sregs = self.vcpu.get_sregs()
        sregs.cr0 = x86.CR0_PE | x86.CR0_MP | x86.CR0_ET | x86.CR0_NE | x86.CR0_WP | x86.CR0_PG
        sregs.cr3 = PML4
        sregs.cr4 = x86.CR4_PAE
        # the guest kernel "has set" SCE, as a booted Linux has
        sregs.efer = x86.EFER_LME | x86.EFER_LMA | x86.EFER_SCE
        _set_segment(sregs.cs, CS_SEL, True)
        for seg in (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
            _set_segment(seg, DS_SEL, False)
        sregs.tr.base, sregs.tr.limit, sregs.tr.selector = TSS, 0x67, TSS_SEL
        sregs.tr.type, sregs.tr.present, sregs.tr.s, sregs.tr.unusable = 0xB, 1, 0, 0
        sregs.ldt.unusable = 1
        sregs.gdt.base, sregs.gdt.limit = GDT, 5 * 8 - 1
        sregs.idt.base, sregs.idt.limit = IDT, 256 * 16 - 1
        self.vcpu.set_sregs(sregs)
        regs = ffi.new("struct kvm_regs *")
        regs.rip = self.symbols["_start"]
        regs.rsp = STACK_TOP
        regs.rflags = x86.RFLAGS_FIXED
        self.vcpu.set_regs(regs)
        self.vcpu.set_msrs(
            {
                x86.MSR_STAR: STAR,
                x86.MSR_LSTAR: self.symbols["syscall_entry"],
                x86.MSR_SYSCALL_MASK: FMASK,
                x86.MSR_IA32_SYSENTER_CS: SYSENTER_CS,
                x86.MSR_IA32_SYSENTER_ESP: SYSENTER_ESP,
                x86.MSR_IA32_SYSENTER_EIP: SYSENTER_EIP,
            }
        )

    def set_rip(self, symbol: str) -> None:
        """Move the vCPU to *symbol* of the guest image."""
        regs = self.vcpu.get_regs()
        regs.rip = self.symbols[symbol]
        self.vcpu.set_regs(regs)

    def close(self) -> None:
        """Close the vCPU, the VM and /dev/kvm, and free the guest memory."""
        self.vcpu.close()
        self.vm.close()
        self.kvm.close()
        self._mem_ptr = None
        self.mem.close()

    def __enter__(self) -> TestVm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_GPRS = REG_NAMES[: REG_NAMES.index("rflags") + 1]
_SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")


def fill_from_kvm(
    ev: Any,
    *,
    vcpu_id: int,
    type: int,
    regs: Any,
    sregs: Any,
    msrs: Mapping[int, int],
    flags: int = 0,
    timestamp_ns: int = 0,
    efer: int | None = None,
) -> None:
    """Fill ``struct kvm_nitro_event *`` *ev* from KVM's ``struct kvm_regs *`` *regs*,
    ``struct kvm_sregs *`` *sregs* and the MSRs of :data:`x86.SYSCALL_MSRS` in *msrs*.

    Overwrite ``regs.rip``/``rflags``/``rsp`` of *regs* first if the trap moved them
    (a #UD frame).  *efer* is the guest's own view (the shadow) if given.
    """
    ev.vcpu_id = vcpu_id
    ev.type = type
    ev.flags = flags
    ev.timestamp_ns = timestamp_ns
    out = ev.regs
    for name in _GPRS:
        setattr(out, name, getattr(regs, name))
    out.cr0, out.cr2, out.cr3, out.cr4 = sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4
    out.efer = sregs.efer if efer is None else efer
    out.fs_base, out.gs_base = sregs.fs.base, sregs.gs.base
    out.kernel_gs_base = msrs.get(x86.MSR_KERNEL_GS_BASE, 0)
    out.star = msrs.get(x86.MSR_STAR, 0)
    out.lstar = msrs.get(x86.MSR_LSTAR, 0)
    out.cstar = msrs.get(x86.MSR_CSTAR, 0)
    out.sfmask = msrs.get(x86.MSR_SYSCALL_MASK, 0)
    out.sysenter_cs = msrs.get(x86.MSR_IA32_SYSENTER_CS, 0)
    out.sysenter_esp = msrs.get(x86.MSR_IA32_SYSENTER_ESP, 0)
    out.sysenter_eip = msrs.get(x86.MSR_IA32_SYSENTER_EIP, 0)
    for name in _SEGMENTS:
        setattr(out, name, getattr(sregs, name).selector)


class UnexpectedExit(AssertionError):
    """The test VM exited in a way the Nitro cycle does not expect."""


class NitroCycle(Backend):
    """The userspace Nitro cycle on a :class:`TestVm`, producing into *ring*.

    Also a :class:`~libvirt_nitro.backend.Backend` for a
    :class:`~libvirt_nitro.tracer.Tracer`: :meth:`start` runs the cycle on a thread until
    :meth:`stop` (or *max_events* events).
    """

    name = "testvm"

    def __init__(self, tvm: TestVm, ring: Ring | None = None, max_events: int | None = None):
        self.tvm = tvm
        self.ring = ring
        self.max_events = max_events
        self.events = 0  # trapped SYSCALLs completed
        self.rdmsr_exits = 0
        self.wrmsr_exits = 0
        self.shadow_efer = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.ud_handler = 0

    def arm(self) -> None:
        """Clear EFER.SCE (keeping the guest's value as the shadow) and put a hardware
        breakpoint on the guest's #UD handler, read from its IDT."""
        vcpu = self.tvm.vcpu
        sregs = vcpu.get_sregs()
        self.shadow_efer = sregs.efer
        sregs.efer &= ~x86.EFER_SCE
        vcpu.set_sregs(sregs)
        gate = self.tvm.read(sregs.idt.base + 16 * x86.VECTOR_UD, 16)
        low, high = struct.unpack("<QQ", gate)
        self.ud_handler = (
            (low & 0xFFFF) | (((low >> 48) & 0xFFFF) << 16) | ((high & 0xFFFFFFFF) << 32)
        )
        self.arm_breakpoint()

    def _deliver_genuine(self) -> None:
        """A #UD that is not ours: let the guest's handler run.  Setting RF through
        KVM_SET_REGS does not get past the breakpoint on this host, so step one
        instruction of the handler without it, then re-arm."""
        vcpu = self.tvm.vcpu
        vcpu.set_guest_debug(lib.KVM_GUESTDBG_ENABLE | lib.KVM_GUESTDBG_SINGLESTEP)
        reason = vcpu.run()
        if reason != lib.KVM_EXIT_DEBUG:
            raise UnexpectedExit(f"exit {reason} while stepping into the #UD handler")
        self.arm_breakpoint()

    def arm_breakpoint(self) -> None:
        """Hardware breakpoint (DR0, execute, 1 byte) on the guest's #UD handler."""
        self.tvm.vcpu.set_guest_debug(
            lib.KVM_GUESTDBG_ENABLE | lib.KVM_GUESTDBG_USE_HW_BP,
            [self.ud_handler, 0, 0, 0, 0, 0, 0, 0x1],  # DR7.L0, RW=exec, LEN=1
        )

    def step(self) -> int:
        """KVM_RUN once and handle the exit; return the exit reason."""
        vcpu = self.tvm.vcpu
        run = vcpu.run_struct
        reason = vcpu.run()
        if reason == lib.KVM_EXIT_DEBUG:
            if run.debug.arch.pc != self.ud_handler:
                raise UnexpectedExit(f"debug exit at {run.debug.arch.pc:#x}")
            self._on_ud()
        elif reason == lib.KVM_EXIT_X86_RDMSR:
            self.rdmsr_exits += 1
            run.msr.data = self.shadow_efer if run.msr.index == x86.MSR_EFER else 0
            run.msr.error = 0 if run.msr.index == x86.MSR_EFER else 1
        elif reason == lib.KVM_EXIT_X86_WRMSR:
            self.wrmsr_exits += 1
            if run.msr.index != x86.MSR_EFER:
                run.msr.error = 1
            else:
                self.shadow_efer = run.msr.data
                sregs = vcpu.get_sregs()  # the write itself is not applied by KVM
                sregs.efer = run.msr.data & ~x86.EFER_SCE
                vcpu.set_sregs(sregs)
                run.msr.error = 0
        elif reason != lib.KVM_EXIT_IO:
            raise UnexpectedExit(f"exit reason {reason} at rip {vcpu.get_regs().rip:#x}")
        return reason

    def _on_ud(self) -> None:
        vcpu = self.tvm.vcpu
        regs = vcpu.get_regs()
        # the #UD frame (no error code) on the CPL0 stack: RIP, CS, RFLAGS, RSP, SS
        rip, _cs, rflags, rsp, _ss = struct.unpack("<5Q", self.tvm.read(regs.rsp, 40))
        if self.tvm.read(rip, 2) != x86.SYSCALL_INSN:
            self._deliver_genuine()
            return
        sregs = vcpu.get_sregs()
        msrs = vcpu.get_msrs(x86.SYSCALL_MSRS)
        regs.rip, regs.rflags, regs.rsp = rip, rflags & ~x86.RFLAGS_RF, rsp
        if self.ring is not None:
            stamp = time.monotonic_ns()
            self.ring.produce(
                lambda ev: fill_from_kvm(
                    ev,
                    vcpu_id=self.tvm.vcpu.vcpu_id or 0,
                    type=EVENT_SYSCALL,
                    regs=regs,
                    sregs=sregs,
                    msrs=msrs,
                    flags=lib.KVM_NITRO_EVENT_F_LONG_MODE | lib.KVM_NITRO_EVENT_F_RF_CLEARED,
                    timestamp_ns=stamp,
                    efer=self.shadow_efer,
                )
            )
        res = x86.syscall_result(
            rip, rflags, msrs[x86.MSR_STAR], msrs[x86.MSR_LSTAR], msrs[x86.MSR_SYSCALL_MASK]
        )
        regs.rcx, regs.r11, regs.rip, regs.rflags = res.rcx, res.r11, res.rip, res.rflags
        vcpu.set_regs(regs)
        if sregs.cs.selector != res.cs or sregs.ss.selector != res.ss:
            _set_segment(sregs.cs, res.cs, True)
            _set_segment(sregs.ss, res.ss, False)
            vcpu.set_sregs(sregs)
        self.events += 1

    def run_until(self, events: int, timeout: float = 30.0) -> None:
        """Run the guest until *events* SYSCALLs were trapped and completed.

        :raises UnexpectedExit: an exit the cycle does not expect, or *timeout* s passed.
        """
        deadline = time.monotonic() + timeout
        while self.events < events:
            self.step()
            if time.monotonic() > deadline:
                raise UnexpectedExit(f"{self.events}/{events} events after {timeout} s")

    # Backend interface
    def open(self, slot_count: int) -> Ring:
        """A new ring of *slot_count* slots for the cycle to fill."""
        self.ring = Ring(slot_count)
        return self.ring

    @property
    def running(self) -> bool:
        """True while the cycle's thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, ring: Ring, pipeline: Any = None) -> None:
        """Run the cycle on a thread, producing into *ring*, until :meth:`stop`."""
        self.ring = ring
        self.arm()
        self._thread = threading.Thread(target=self._loop, name="nitro-testvm", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                if self.max_events is not None and self.events >= self.max_events:
                    break
                self.step()
        except BaseException as exc:  # reported to the test through .error
            self.error = exc

    def stop(self) -> None:
        """Stop the thread (it ends at its next exit: every SYSCALL is one)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
