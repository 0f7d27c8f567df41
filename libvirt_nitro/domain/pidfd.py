"""Take file descriptors out of another process: ``pidfd_open(2)`` + ``pidfd_getfd(2)``.

``pidfd_getfd`` needs PTRACE_MODE_ATTACH_REALCREDS over the target (root, or the same user
with ptrace allowed by Yama). Python has ``os.pidfd_open`` but no ``pidfd_getfd``: that one
system call is made through ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from ..errors import NitroError, PermissionDenied

__all__ = ["pidfd_open", "pidfd_getfd", "NR_PIDFD_GETFD"]

#: x86-64 system call number of pidfd_getfd (Linux 5.6+).
NR_PIDFD_GETFD = 438


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def pidfd_open(pid: int) -> int:
    """Return a pidfd (``int``, close-on-exec) referring to process *pid*.

    :raises NitroError: the process does not exist (``ESRCH``) or the call failed.
    """
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise NitroError(f"process {pid} does not exist (did the domain stop?)") from None
    except OSError as exc:
        raise NitroError(f"pidfd_open({pid}): {exc.strerror}") from None


def pidfd_getfd(pidfd: int, target_fd: int, pid: int | None = None) -> int:
    """Duplicate file descriptor *target_fd* of the process behind *pidfd* into ours.

    The new descriptor is close-on-exec. *pid* is only used in error messages.

    :raises PermissionDenied: ptrace access to the process is refused (``EPERM``).
    :raises NitroError: any other failure (``EBADF``: the fd was closed meanwhile).
    """
    fd = _libc().syscall(NR_PIDFD_GETFD, ctypes.c_int(pidfd), ctypes.c_int(target_fd), 0)
    if fd >= 0:
        return fd
    err = ctypes.get_errno()
    who = f"process {pid}" if pid is not None else f"pidfd {pidfd}"
    if err == errno.EPERM:
        raise PermissionDenied(f"pidfd_getfd on {who} refused: need root (ptrace access to QEMU)")
    raise NitroError(f"pidfd_getfd({who}, fd {target_fd}): {os.strerror(err)}")
