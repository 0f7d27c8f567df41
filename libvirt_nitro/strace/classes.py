"""strace's system call classes (``%file``, ``%process``...) and ``-e trace=`` expressions.

The classes are strace's (its ``sysent`` flags: TF, TP, TN, TS, TM, TD, TI...) for the x86-64
calls listed here: every call this package decodes and the other common ones of each class.
This is the one class table: ``-e trace=%file`` and the ``<nitro:class name="file"/>``
element of the domain metadata select the same calls.
"""

from __future__ import annotations

import re

from ..errors import InvalidTraceExpression
from ..linux.syscalls_x86_64 import SYSCALLS

__all__ = ["CLASSES", "syscall_class", "parse_trace_expr"]

_FILE = (
    "open openat openat2 creat stat lstat newfstatat statx access faccessat faccessat2 execve "
    "execveat chdir chroot mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 link "
    "linkat symlink symlinkat readlink readlinkat chmod fchmodat chown lchown fchownat "
    "truncate utime utimes futimesat utimensat mknod mknodat statfs getxattr lgetxattr "
    "setxattr lsetxattr listxattr llistxattr removexattr lremovexattr swapon swapoff "
    "mount umount2 pivot_root acct uselib quotactl name_to_handle_at inotify_add_watch "
    "fanotify_mark open_tree move_mount fsconfig mount_setattr"
)
_DESC = (
    "read write open close fstat newfstatat poll lseek mmap ioctl pread64 pwrite64 readv "
    "writev pipe select dup dup2 fcntl flock fsync fdatasync ftruncate getdents getdents64 "
    "fchdir fchmod fchown fstatfs readahead openat mkdirat fchownat futimesat unlinkat "
    "renameat linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll splice tee "
    "sync_file_range vmsplice utimensat epoll_create epoll_wait epoll_ctl epoll_pwait "
    "epoll_create1 eventfd eventfd2 timerfd_create timerfd_settime timerfd_gettime "
    "signalfd signalfd4 pipe2 dup3 inotify_init inotify_init1 preadv pwritev renameat2 "
    "memfd_create execveat copy_file_range preadv2 pwritev2 statx sendfile fallocate "
    "fadvise64 openat2 close_range faccessat2 pidfd_open pidfd_getfd io_uring_setup "
    "io_uring_enter io_uring_register fanotify_init fanotify_mark name_to_handle_at "
    "open_by_handle_at syncfs setns mknodat fremovexattr fgetxattr fsetxattr flistxattr"
)
_PROCESS = (
    "clone clone3 fork vfork execve execveat exit exit_group wait4 waitid kill tkill tgkill "
    "arch_prctl rt_sigqueueinfo rt_tgsigqueueinfo pidfd_send_signal unshare prctl"
)
_NETWORK = (
    "socket socketpair connect accept accept4 bind listen getsockname getpeername sendto "
    "recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown setsockopt getsockopt"
)
_SIGNAL = (
    "kill tkill tgkill rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending "
    "rt_sigtimedwait rt_sigqueueinfo rt_tgsigqueueinfo rt_sigsuspend sigaltstack pause "
    "signalfd signalfd4 pidfd_send_signal"
)
_MEMORY = (
    "mmap mprotect munmap brk mremap msync mincore madvise mlock munlock mlockall "
    "munlockall remap_file_pages mbind set_mempolicy get_mempolicy migrate_pages "
    "move_pages mlock2 pkey_mprotect process_madvise shmat shmdt"
)
_IPC = "msgget msgsnd msgrcv msgctl semget semop semctl semtimedop shmget shmat shmctl shmdt"
_CREDS = "getuid geteuid getgid getegid setuid setgid setreuid setregid getgroups setgroups"
_PURE = "getpid getppid gettid getuid geteuid getgid getegid getpgrp"
_CLOCK = "clock_nanosleep clock_gettime clock_settime clock_getres clock_adjtime adjtimex"

#: class -> names of the x86-64 system calls in it.
CLASSES: dict[str, frozenset[str]] = {
    "%file": frozenset(_FILE.split()),
    "%desc": frozenset(_DESC.split()),
    "%process": frozenset(_PROCESS.split()),
    "%network": frozenset(_NETWORK.split()),
    "%net": frozenset(_NETWORK.split()),
    "%signal": frozenset(_SIGNAL.split()),
    "%memory": frozenset(_MEMORY.split()),
    "%ipc": frozenset(_IPC.split()),
    "%creds": frozenset(_CREDS.split()),
    "%pure": frozenset(_PURE.split()),
    "%clock": frozenset(_CLOCK.split()),
    "%stat": frozenset({"stat"}),
    "%lstat": frozenset({"lstat"}),
    "%fstat": frozenset({"fstat", "newfstatat"}),
    "%%stat": frozenset({"stat", "lstat", "fstat", "newfstatat", "statx"}),
}

_NUMBERS = {name: nr for nr, name in SYSCALLS.items()}


def syscall_class(name: str) -> set[str]:
    """strace's classes of system call *name*: ``{"%file", "%desc"}`` for ``openat``."""
    return {cls for cls, names in CLASSES.items() if name in names}


def _one(token: str) -> set[int]:
    if token == "all":
        return set(SYSCALLS)
    if token == "none":
        return set()
    if token in CLASSES:
        return {_NUMBERS[n] for n in CLASSES[token] if n in _NUMBERS}
    if token.startswith("/"):
        try:
            pattern = re.compile(token[1:])
        except re.error as e:
            raise InvalidTraceExpression(f"invalid regex {token[1:]!r}: {e}") from None
        return {nr for nr, name in SYSCALLS.items() if pattern.search(name)}
    if token in _NUMBERS:
        return {_NUMBERS[token]}
    if token.isdigit() and int(token) in SYSCALLS:
        return {int(token)}
    return set()


def parse_trace_expr(expr: str) -> set[int]:
    """The x86-64 system call numbers ``-e trace=EXPR`` selects: comma-separated names,
    numbers, classes (``%file``), ``/regex``, ``all``/``none``; a leading ``!`` negates the
    whole set and a ``?`` prefix lets a token match nothing.

    :raises InvalidTraceExpression: a token (without ``?``) matches no system call.
    """
    text = expr.strip()
    if text.startswith("trace="):
        text = text.removeprefix("trace=")
    negate = text.startswith("!")
    if negate:
        text = text[1:]
    selected: set[int] = set()
    for raw in text.split(","):
        token = raw.strip()
        optional = token.startswith("?")
        token = token.removeprefix("?")
        if not token:
            raise InvalidTraceExpression(f"empty item in trace expression {expr!r}")
        found = _one(token)
        if not found and not optional and token not in ("none",) and token not in CLASSES:
            if not token.startswith("/"):
                raise InvalidTraceExpression(f"invalid system call {token!r} in {expr!r}")
        selected |= found
    return set(SYSCALLS) - selected if negate else selected
