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
    "format_error",
    "format_return",
    "syscall_name",
    "syscall_number",
    "to_signed64",
    "SYSCALLS_X86_64",
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


#: Kernel-internal errnos (``include/linux/errno.h``, not exported to user space) that a
#: system call can still return to a tracer, with strace's names. The ``ERESTART*`` codes
#: never reach the caller: strace prints them as ``? ERESTARTSYS (To be restarted if
#: SA_RESTART is set)``.
KERNEL_ERRNOS: dict[int, str] = {
    512: "ERESTARTSYS",
    513: "ERESTARTNOINTR",
    514: "ERESTARTNOHAND",
    515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK",
    517: "EPROBE_DEFER",
    518: "EOPENSTALE",
    521: "EBADHANDLE",
    522: "ENOTSYNC",
    523: "EBADCOOKIE",
    524: "ENOTSUPP",
    525: "ETOOSMALL",
    526: "ESERVERFAULT",
    527: "EBADTYPE",
    528: "EJUKEBOX",
    529: "EIOCBQUEUED",
    530: "ERECALLCONFLICT",
}

_RESTART_TEXT = {
    512: "? ERESTARTSYS (To be restarted if SA_RESTART is set)",
    513: "? ERESTARTNOINTR (To be restarted)",
    514: "? ERESTARTNOHAND (To be restarted if no handler)",
    516: "? ERESTART_RESTARTBLOCK (Interrupted by signal)",
}


def format_error(err: int) -> str:
    """strace's text of a failed call's positive errno *err* (after ``= ``):
    ``-1 ENOENT (No such file or directory)``, ``? ERESTARTSYS (To be restarted if
    SA_RESTART is set)``, ``-1 ENOIOCTLCMD (Unknown error 515)``, ``-1 (errno 4000)``."""
    if err in _RESTART_TEXT:
        return _RESTART_TEXT[err]
    entry = ERRNO.get(err)
    if entry is not None:
        return f"-1 {entry[0]} ({STRERROR.get(err, entry[1])})"
    if err in KERNEL_ERRNOS:
        return f"-1 {KERNEL_ERRNOS[err]} (Unknown error {err})"
    return f"-1 (errno {err})"


def format_return(value: int) -> str:
    """strace text of a raw 64-bit return register (``rax`` at SYSRET), as strace prints a
    call it knows nothing else of.

    ``[-4095, -1]`` is an error: ``-1 ENOENT (No such file or directory)``, with glibc's
    ``strerror()`` text as strace prints it (:data:`STRERROR`, not the kernel header's
    comment); see :func:`format_error`. Anything else is the value in unsigned decimal
    (strace's default ``RVAL_UDECIMAL``).
    """
    signed = to_signed64(value)
    if -MAX_ERRNO <= signed <= -1:
        return format_error(-signed)
    return str(value & ((1 << 64) - 1))
