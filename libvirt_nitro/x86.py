"""x86-64 architectural constants and the architectural result of SYSCALL.

Numbers from the Intel SDM / AMD APM (MSR indices, EFER/CR/RFLAGS bits, exception
vectors).  :func:`syscall_result` is what the CPU does on SYSCALL in 64-bit mode,
which a userspace Nitro cycle writes back to complete a trapped SYSCALL.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "MSR_EFER",
    "MSR_STAR",
    "MSR_LSTAR",
    "MSR_CSTAR",
    "MSR_SYSCALL_MASK",
    "MSR_FS_BASE",
    "MSR_GS_BASE",
    "MSR_KERNEL_GS_BASE",
    "MSR_IA32_SYSENTER_CS",
    "MSR_IA32_SYSENTER_ESP",
    "MSR_IA32_SYSENTER_EIP",
    "SYSCALL_MSRS",
    "EFER_SCE",
    "EFER_LME",
    "EFER_LMA",
    "EFER_NXE",
    "CR0_PE",
    "CR0_MP",
    "CR0_ET",
    "CR0_NE",
    "CR0_WP",
    "CR0_PG",
    "CR4_PAE",
    "RFLAGS_FIXED",
    "RFLAGS_TF",
    "RFLAGS_IF",
    "RFLAGS_RF",
    "VECTOR_DB",
    "VECTOR_UD",
    "VECTOR_GP",
    "SYSCALL_INSN",
    "SYSCALL_LEN",
    "SyscallResult",
    "syscall_result",
    "SysretResult",
    "sysret_result",
    "SYSRET_RFLAGS_MASK",
    "idt_gate_offset",
    "IDT_GATE_SIZE",
]

MSR_EFER = 0xC0000080
MSR_STAR = 0xC0000081
MSR_LSTAR = 0xC0000082
MSR_CSTAR = 0xC0000083
MSR_SYSCALL_MASK = 0xC0000084  # FMASK
MSR_FS_BASE = 0xC0000100
MSR_GS_BASE = 0xC0000101
MSR_KERNEL_GS_BASE = 0xC0000102
MSR_IA32_SYSENTER_CS = 0x174
MSR_IA32_SYSENTER_ESP = 0x175
MSR_IA32_SYSENTER_EIP = 0x176

#: The MSRs a Nitro event records (struct kvm_nitro_regs), in one KVM_GET_MSRS.
SYSCALL_MSRS = (
    MSR_STAR,
    MSR_LSTAR,
    MSR_CSTAR,
    MSR_SYSCALL_MASK,
    MSR_KERNEL_GS_BASE,
    MSR_IA32_SYSENTER_CS,
    MSR_IA32_SYSENTER_ESP,
    MSR_IA32_SYSENTER_EIP,
)

EFER_SCE = 1 << 0
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
EFER_NXE = 1 << 11

CR0_PE = 1 << 0
CR0_MP = 1 << 1
CR0_ET = 1 << 4
CR0_NE = 1 << 5
CR0_WP = 1 << 16
CR0_PG = 1 << 31
CR4_PAE = 1 << 5

RFLAGS_FIXED = 1 << 1
RFLAGS_TF = 1 << 8
RFLAGS_IF = 1 << 9
RFLAGS_RF = 1 << 16

VECTOR_DB = 1
VECTOR_UD = 6
VECTOR_GP = 13

SYSCALL_INSN = b"\x0f\x05"
SYSCALL_LEN = len(SYSCALL_INSN)


class SyscallResult(NamedTuple):
    """Register values after a 64-bit SYSCALL (cs/ss are selectors)."""

    rcx: int
    r11: int
    rip: int
    rflags: int
    cs: int
    ss: int


def syscall_result(rip: int, rflags: int, star: int, lstar: int, fmask: int) -> SyscallResult:
    """What SYSCALL at *rip* does in 64-bit mode: RCX = RIP + 2, R11 = RFLAGS,
    RIP = LSTAR, RFLAGS &= ~FMASK (RF cleared), CS = STAR[47:32], SS = STAR[47:32] + 8.

    *rflags* is the flags the instruction saw; RF (which a #UD frame saves as 1) is
    taken out of both R11 and the new RFLAGS.
    """
    saved = rflags & ~RFLAGS_RF
    cs = (star >> 32) & 0xFFFF
    return SyscallResult(
        rcx=(rip + SYSCALL_LEN) & 0xFFFFFFFFFFFFFFFF,
        r11=saved,
        rip=lstar,
        rflags=(saved & ~fmask & ~RFLAGS_RF) | RFLAGS_FIXED,
        cs=cs & ~3,
        ss=(cs + 8) & ~3,
    )


#: RFLAGS bits SYSRET takes from R11 (RF and VM are cleared, bit 1 forced).
SYSRET_RFLAGS_MASK = 0x3C7FD7


class SysretResult(NamedTuple):
    """Register values after SYSRET (cs/ss are selectors with RPL 3)."""

    rip: int
    rflags: int
    cs: int
    ss: int


def sysret_result(rcx: int, r11: int, star: int, rex_w: bool = True) -> SysretResult:
    """What SYSRET does: RIP = RCX (ECX for the 32-bit form), RFLAGS = (R11 & 0x3C7FD7) | 2,
    CS = STAR[63:48] + 16 (SYSRETQ) or STAR[63:48] (SYSRETL), SS = STAR[63:48] + 8, RPL 3."""
    base = (star >> 48) & 0xFFFF
    return SysretResult(
        rip=rcx if rex_w else rcx & 0xFFFFFFFF,
        rflags=(r11 & SYSRET_RFLAGS_MASK) | RFLAGS_FIXED,
        cs=((base + 16) if rex_w else base) | 3,
        ss=(base + 8) | 3,
    )


#: Bytes of a 64-bit IDT gate descriptor.
IDT_GATE_SIZE = 16


def idt_gate_offset(gate: bytes) -> int:
    """The handler address in a 16-byte long-mode IDT gate descriptor."""
    low = int.from_bytes(gate[0:2], "little")
    middle = int.from_bytes(gate[6:8], "little")
    high = int.from_bytes(gate[8:12], "little")
    return low | middle << 16 | high << 32
