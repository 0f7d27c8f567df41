"""Guest Linux knowledge: system call numbers and errno values of x86 Linux guests.

The tables are generated from the kernel UAPI headers by ``scripts/gen-linux-tables``
(:mod:`.syscalls_x86_64`, :mod:`.syscalls_i386`, :mod:`.errno_table`). The guest ABI is
an argument (``abi="x86_64"`` or ``"i386"``), never taken from the host.
"""

from __future__ import annotations

from .errno_table import ERRNO, ERRNO_ALIASES, STRERROR
from .syscalls_i386 import SYSCALLS as SYSCALLS_I386
from .syscalls_x86_64 import SYSCALLS as SYSCALLS_X86_64

__all__ = [
    "ABIS",
    "SYSCALL_ARG_REGS",
    "ERRNO",
    "ERRNO_ALIASES",
    "MAX_ERRNO",
    "STRERROR",
    "errno_message",
    "errno_name",
    "format_return",
    "syscall_name",
    "syscall_number",
    "to_signed64",
]

#: Syscall tables by guest ABI: ``x86_64`` (SYSCALL) and ``i386`` (int 0x80/SYSENTER).
ABIS: dict[str, dict[int, str]] = {"x86_64": SYSCALLS_X86_64, "i386": SYSCALLS_I386}

#: The registers that hold an x86-64 system call's six arguments, in order (the names of
#: ``struct kvm_nitro_regs``).
SYSCALL_ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")

#: A return value in ``[-MAX_ERRNO, -1]`` is ``-errno`` (``include/linux/err.h``).
MAX_ERRNO = 4095

_NUMBERS: dict[str, dict[str, int]] = {
    abi: {name: nr for nr, name in table.items()} for abi, table in ABIS.items()
}


def _table(abi: str) -> dict[int, str]:
    try:
        return ABIS[abi]
    except KeyError:
        raise ValueError(f"unknown guest ABI {abi!r}; known: {sorted(ABIS)}") from None


def syscall_name(nr: int, abi: str = "x86_64") -> str:
    """Name of system call *nr* (``orig_rax``/``rax`` at entry) of *abi*.

    Unknown numbers give ``"syscall_0x3ff"``, as strace 6.1 prints them.

    :raises ValueError: *abi* is not in :data:`ABIS`.
    """
    return _table(abi).get(nr, f"syscall_{nr:#x}")


def syscall_number(name: str, abi: str = "x86_64") -> int | None:
    """Number of system call *name* in *abi*, or None if *abi* has no such call.

    :raises ValueError: *abi* is not in :data:`ABIS`.
    """
    _table(abi)
    return _NUMBERS[abi].get(name)


def errno_name(err: int) -> str | None:
    """Canonical name of positive errno *err* (``2`` -> ``"ENOENT"``), or None if unknown."""
    entry = ERRNO.get(err)
    return entry[0] if entry else None


def errno_message(err: int) -> str | None:
    """Kernel header message of errno *err* (``"No such file or directory"``), or None."""
    entry = ERRNO.get(err)
    return entry[1] if entry else None


def to_signed64(value: int) -> int:
    """Interpret *value* (a raw ``u64`` register, or already signed) as a signed ``s64``."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value & (1 << 63) else value


def format_return(value: int) -> str:
    """strace text of a raw 64-bit return register (``rax`` at SYSRET).

    ``[-4095, -1]`` is an error: ``-1 ENOENT (No such file or directory)``, with glibc's
    ``strerror()`` text as strace prints it (:data:`STRERROR`, not the kernel header's
    comment); an errno missing from the table prints as ``-1 E<n> (Unknown error <n>)``.
    Anything else is the signed decimal value.
    """
    signed = to_signed64(value)
    if not -MAX_ERRNO <= signed <= -1:
        return str(signed)
    err = -signed
    entry = ERRNO.get(err)
    if entry is None:
        return f"-1 E{err} (Unknown error {err})"
    return f"-1 {entry[0]} ({STRERROR.get(err, entry[1])})"
