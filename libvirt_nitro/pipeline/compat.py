"""System calls of 32-bit processes (compatibility mode): named and shown raw.

A 32-bit process enters the kernel through its vDSO with SYSCALL (AMD) or SYSENTER (Intel)
from compatibility mode, so its events carry no ``KVM_NITRO_EVENT_F_LONG_MODE``. Its call
numbers are the i386 table's and its arguments i386's (ebx, ecx, edx, esi, edi, ebp), as
``__kernel_vsyscall`` leaves them (``arch/x86/entry/vdso/vdso32/system_call.S``, Linux
6.1): it pushes ebp, then before SYSCALL moves ecx (which SYSCALL overwrites) into ebp, and
before SYSENTER puts esp in ebp; so the second argument is ebp after SYSCALL and ecx after
SYSENTER, and the sixth is the u32 at esp (the kernel's ``do_fast_syscall_32`` reads it
there too). i386 structs are not x86-64's (32-bit longs and pointers) and are not decoded:
the arguments are printed in hex, as strace prints a call it does not decode, as many as
the x86-64 call of the same name takes (6 for a call x86-64 lacks); the return value is
``eax``, a signed 32-bit value.
"""

from __future__ import annotations

import struct
from typing import Any

from ..linux import syscall_name, syscall_number
from ..strace import Call
from ..strace.memory import read
from ..strace.signatures import signature
from ..strace.structs import hex_c

__all__ = ["compat_entry", "compat_return", "x86_64_number"]

_MASK32 = 0xFFFF_FFFF


def compat_entry(regs: Any, sysenter: bool, memory: Any) -> Call:
    """The call of a 32-bit process's entry: its i386 name, raw arguments and their hex
    text (``?`` for a sixth argument that could not be read from its stack)."""
    nr = regs.rax & _MASK32
    name = syscall_name(nr, "i386")
    sixth = read(memory, regs.rsp & _MASK32, 4)
    args = (
        regs.rbx & _MASK32,
        (regs.rcx if sysenter else regs.rbp) & _MASK32,
        regs.rdx & _MASK32,
        regs.rsi & _MASK32,
        regs.rdi & _MASK32,
        struct.unpack("<I", sixth)[0] if sixth is not None else 0,
    )
    sig = signature(name)
    count = len(sig.kinds(args)) if sig is not None else 6
    values: list[Any] = [hex_c(arg) for arg in args[:count]]
    if count == 6 and sixth is None:
        values[5] = "?"
    return Call(nr, name, args, values, kinds=())


def compat_return(rax: int) -> int:
    """A 32-bit process's return value: ``eax``, signed."""
    eax = rax & _MASK32
    return eax - (1 << 32) if eax & (1 << 31) else eax


def x86_64_number(call: Call) -> int | None:
    """The x86-64 number of the call of the same name (what the syscall filter holds), or
    None."""
    return syscall_number(call.name)
