"""The one signature table: every x86-64 system call of Linux 6.1, as strace 6.1 prints it.

``SIGNATURES[name]`` is a :class:`Sig`: the kinds of its arguments (:mod:`.args`: ``FD``,
``PATH``, ``Flags(table)``, ``Struct(decoder, size, EXIT)``, ``Buf(size_arg)``...), or a
*layout* function of the six raw registers giving them where strace's own logic depends on
an argument (``fcntl``'s command, ``futex``'s op: :mod:`.special`); and the :class:`Ret`,
how the return value prints (unsigned decimal by default, as strace's ``RVAL_UDECIMAL``;
``fd``, hex, octal, ``?``; a decoration in parentheses).

Each argument's memory footprint is declared by its kind, so :func:`footprints` gives, for
a call and its registers, which argument registers point at memory to copy at entry or at
exit, and how much (a capture recipe). Calls strace prints with ``printargs`` (raw hex) have
that many hex arguments (:func:`~.special.raw`), never the six registers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..linux import MAX_ERRNO, SYSCALLS_X86_64, format_error, to_signed64
from ..linux import flags as F
from . import special as X
from . import structs as S
from .args import (
    EXIT,
    RET,
    Buf,
    Context,
    CStr,
    Enum,
    Exit,
    Flags,
    Fn,
    Footprint,
    IntP,
    Kind,
    OpenFlags,
    SigSet,
    StringArray,
    Struct,
    s32,
)
from .special import (
    CLOCK,
    DIRFD,
    FD,
    HEX,
    HEX32,
    INT,
    LONG,
    MODE,
    PATH,
    PID,
    PTR,
    SIG,
    STR,
    TIMESPEC,
    TIMEVAL,
    UID,
    UINT,
    ULONG,
    raw,
    struct_in,
    struct_out,
)
from .xlat import MASK32

__all__ = ["SIGNATURES", "Sig", "Ret", "signature", "footprints", "NO_RETURN"]

Layout = tuple[Kind, ...] | Callable[[tuple[int, ...]], tuple[Kind, ...]]
ReturnFn = Callable[[Context, int], tuple[str | None, str | None]]


@dataclass(frozen=True)
class Ret:
    """How a return value prints: *fmt* ``u`` (strace's default, unsigned decimal), ``d``
    (signed), ``x`` (hex), ``o`` (octal mode), ``fd`` (a descriptor), ``none`` (``?``: the
    call does not return), ``ldt`` (``u``, but an errno clipped to 32 bits, as modify_ldt
    returns it on x86-64, named: ``4294967258 ENOSYS (...)``); *nf* when the call never
    fails (no errno decoding, strace's ``NF``); *fn* strace's per-call logic giving a format
    and a decoration; *reads* the memory *fn* reads at the exit, ``(register index,
    footprint)`` (for :func:`footprints`)."""

    fmt: str = "u"
    nf: bool = False
    fn: ReturnFn | None = None
    reads: tuple[tuple[int, Footprint], ...] = ()

    def text(self, ctx: Context, raw: int) -> str:
        """The text after ``= ``: ``3``, ``0x1 (flags FD_CLOEXEC)``, ``-1 ENOENT (...)``."""
        fmt, aux = self.fmt, None
        if self.fn is not None:
            override, aux = self.fn(ctx, raw)
            fmt = override or fmt
        if fmt == "none":
            return "?"
        raw &= (1 << 64) - 1
        signed = to_signed64(raw)
        if not self.nf and -MAX_ERRNO <= signed <= -1:
            text = format_error(-signed)
        elif fmt == "x":
            text = hex(raw) if raw else "0"
        elif fmt == "o":
            text = f"0{raw:o}".rjust(3, "0") if raw else "000"
        elif fmt == "ldt" and 0xFFFF_F000 <= raw <= MASK32:
            text = f"{raw} {format_error(-s32(raw)).split(' ', 1)[1]}"
        elif fmt == "d" or (fmt == "fd" and raw > 0x7FFF_FFFF):
            text = str(signed)
        else:
            text = str(raw)
        return f"{text} ({aux})" if aux is not None else text


U, D, FDR, HEXR = Ret(), Ret("d"), Ret("fd"), Ret("x")
NONE = Ret("none")


@dataclass(frozen=True)
class Sig:
    """A call's arguments (kinds, or a layout function of the raw registers) and return."""

    args: Layout
    ret: Ret = U

    def kinds(self, regs: tuple[int, ...]) -> tuple[Kind, ...]:
        """The argument kinds for these raw registers."""
        return self.args if isinstance(self.args, tuple) else self.args(regs)


def _s(*args: Kind, ret: Ret = U) -> Sig:
    return Sig(tuple(args), ret)


def _l(layout: Callable[[tuple[int, ...]], tuple[Kind, ...]], ret: Ret = U) -> Sig:
    return Sig(layout, ret)


# -- shorthands ---------------------------------------------------------------------------

SIZE = ULONG
OFF = LONG
BUF_IN2 = Buf(2)
BUF_OUT = Buf(RET, EXIT)
AT_FLAGS = Flags(F.AT_FLAGS, "AT_???")
WAIT_OPTS = Flags(F.WAIT_OPTIONS, "W???")
SOCK_FLAGS = Flags(F.SOCKET_TYPE_FLAGS, "SOCK_???")
MSG_FLAGS = Flags(F.MSG_FLAGS, "MSG_???")
O_FLAGS = Flags(F.OPEN_FLAGS, "O_???")
RLIMIT_RES = Enum(F.RLIMITS, "RLIMIT_???")
SCHED_POLICY = Enum(F.SCHED_POLICIES, "SCHED_???")
ACCESS_MODE = Flags(F.ACCESS_MODES, "?_OK", zero="F_OK")
CLOCK_FLAGS = Flags(F.TIMER_FLAGS, "TIMER_???")
SIGSET_ARG = SigSet  # SigSet(size_arg)
SIGACTION_IN = struct_in(S.kernel_sigaction, "sigaction")
SIGACTION_OUT = struct_out(S.kernel_sigaction, "sigaction")
STATFS_OUT = struct_out(S.statfs, "statfs")
SOCKLEN = X.SockAddrOut


def _access_mode(ctx: Context, v: int) -> str:
    v &= MASK32
    from .xlat import flag_set

    return flag_set(v, F.ACCESS_MODES, "F_OK", dflt="?_OK")


ACCESS = Fn(_access_mode)
#: What poll's and select's return decorations read: every pollfd's revents (not cut at
#: the budget); the time left.
POLL_READS = ((0, Footprint(EXIT, "array", 8, count_arg=1)),)
SELECT_READS = ((4, Footprint(EXIT, "bytes", 16)),)

SIGNATURES: dict[str, Sig] = {
    # 0
    "read": _s(FD, BUF_OUT, Exit(SIZE)),
    "write": _s(FD, BUF_IN2, SIZE),
    "open": _l(X.open_layout, FDR),
    "close": _s(FD),
    "stat": _s(PATH, X.STAT_OUT),
    "fstat": _s(FD, X.STAT_OUT),
    "lstat": _s(PATH, X.STAT_OUT),
    "poll": _s(X.PollFds(), UINT, INT, ret=Ret(fn=X.poll_return(False), reads=POLL_READS)),
    "lseek": _s(FD, OFF, Enum(F.WHENCE, "SEEK_???")),
    "mmap": _s(PTR, SIZE, X.PROT, X.MMAP_FLAGS, FD, HEX, ret=HEXR),
    # 10
    "mprotect": _s(PTR, SIZE, X.PROT),
    "munmap": _s(PTR, SIZE),
    "brk": _s(PTR, ret=HEXR),
    "rt_sigaction": _s(SIG, SIGACTION_IN, SIGACTION_OUT, Exit(SIZE)),
    "rt_sigprocmask": _s(
        Enum(F.SIGPROCMASK_HOW, "SIG_???"), SigSet(3), SigSet(3, EXIT), Exit(SIZE)
    ),
    "rt_sigreturn": _s(),  # its frame's mask and signal: decode.py (the user stack)
    "ioctl": _s(*X.IOCTL),
    "pread64": _s(FD, BUF_OUT, Exit(SIZE), Exit(OFF)),
    "pwrite64": _s(FD, BUF_IN2, SIZE, OFF),
    "readv": _s(FD, X.Iov(2, EXIT), Exit(SIZE)),
    # 20
    "writev": _s(FD, X.Iov(2), SIZE),
    "access": _s(PATH, ACCESS),
    "pipe": _s(X.FD_PAIR_OUT),
    "select": _s(
        INT,
        X.FdSet(),
        X.FdSet(),
        X.FdSet(),
        TIMEVAL,
        ret=Ret(fn=X.select_return(False), reads=SELECT_READS),
    ),
    "sched_yield": _s(),
    "mremap": _l(X.mremap_layout, HEXR),
    "msync": _s(PTR, SIZE, Flags(F.MSYNC_FLAGS, "MS_???")),
    "mincore": _s(PTR, SIZE, X.Mincore()),
    "madvise": _s(PTR, SIZE, Enum(F.MADVISE, "MADV_???")),
    "shmget": _s(X.IPC_KEY, SIZE, Fn(lambda c, v: X._ipc_shm_mode(v))),
    # 30
    "shmat": _s(INT, PTR, Flags(F.SHMAT_FLAGS, "SHM_???"), ret=HEXR),
    "shmctl": _s(INT, X.ipc_ctl(F.SHMCTL_CMDS, "SHM_???"), PTR),
    "dup": _s(FD, ret=FDR),
    "dup2": _s(FD, FD, ret=FDR),
    "pause": _s(),
    "nanosleep": _s(TIMESPEC, X.SleepRemainder()),
    "getitimer": _s(Enum(F.ITIMERS, "ITIMER_???"), X.ITIMERVAL_OUT),
    "alarm": _s(UINT),
    "setitimer": _s(Enum(F.ITIMERS, "ITIMER_???"), X.ITIMERVAL, X.ITIMERVAL_OUT),
    "getpid": _s(ret=Ret("d", nf=True)),
    # 40
    "sendfile": _s(FD, FD, X.SendfileOffset(), Exit(SIZE)),
    "socket": _s(Enum(F.ADDRESS_FAMILIES, "AF_???"), X.SOCK_TYPE, Fn(X._socket_protocol), ret=FDR),
    "connect": _s(FD, X.SockAddrIn(2), INT),
    "accept": _s(FD, SOCKLEN(2), SOCKLEN(2, True), ret=FDR),
    "sendto": _s(FD, BUF_IN2, SIZE, MSG_FLAGS, X.SockAddrIn(5), INT),
    "recvfrom": _s(
        FD, Buf(RET, EXIT, cap=2), Exit(SIZE), Exit(MSG_FLAGS), SOCKLEN(5), SOCKLEN(5, True)
    ),
    "sendmsg": _s(FD, X.MsgHdr(), MSG_FLAGS),
    "recvmsg": _s(FD, X.MsgHdr(EXIT), Exit(MSG_FLAGS)),
    "shutdown": _s(FD, Enum(F.SHUTDOWN_HOW, "SHUT_???")),
    "bind": _s(FD, X.SockAddrIn(2), INT),
    # 50
    "listen": _s(FD, INT),
    "getsockname": _s(FD, SOCKLEN(2), SOCKLEN(2, True)),
    "getpeername": _s(FD, SOCKLEN(2), SOCKLEN(2, True)),
    "socketpair": _s(Enum(F.ADDRESS_FAMILIES, "AF_???"), X.SOCK_TYPE, UINT, X.FD_PAIR_OUT),
    "setsockopt": _s(FD, Fn(X._sock_level), Fn(X._sock_option), X.SockOptIn(), INT),
    "getsockopt": _s(FD, Fn(X._sock_level), Fn(X._sock_option), X.SockOptOut(), X.SockOptOut(True)),
    "clone": _l(X.clone_layout, Ret("d")),
    "fork": _s(ret=Ret("d")),
    "vfork": _s(ret=Ret("d")),
    "execve": _s(PATH, StringArray(), StringArray(count_only=True)),
    # 60
    "exit": _s(INT, ret=NONE),
    "wait4": _s(PID, X.WaitStatus(), Exit(WAIT_OPTS), X.Rusage(), ret=Ret("d")),
    "kill": _s(PID, SIG),
    "uname": _s(struct_out(S.utsname, "utsname")),
    "semget": _s(X.IPC_KEY, INT, X.IPC_MODE),
    "semop": _s(INT, X.SemBufs(2), UINT),
    "semctl": _l(X.semctl_layout),
    "shmdt": _s(PTR),
    "msgget": _s(X.IPC_KEY, X.IPC_MODE),
    "msgsnd": _s(INT, X.MsgBuf(), SIZE, Flags(F.IPC_MSG_FLAGS, "MSG_???")),
    # 70
    "msgrcv": _s(
        INT, X.MsgBuf(EXIT), Exit(SIZE), Exit(LONG), Exit(Flags(F.IPC_MSG_FLAGS, "MSG_???"))
    ),
    "msgctl": _s(INT, X.ipc_ctl(F.MSGCTL_CMDS, "MSG_???"), PTR),
    "fcntl": _l(X.fcntl_layout, Ret(fn=X.fcntl_return)),
    "flock": _s(FD, Flags(F.FLOCK_OPS, "LOCK_???")),
    "fsync": _s(FD),
    "fdatasync": _s(FD),
    "truncate": _s(PATH, ULONG),
    "ftruncate": _s(FD, ULONG),
    "getdents": _s(FD, X.Dirents(18), Exit(UINT)),
    "getcwd": _s(X.CwdBuf(), Exit(ULONG)),
    # 80
    "chdir": _s(PATH),
    "fchdir": _s(FD),
    "rename": _s(PATH, PATH),
    "mkdir": _s(PATH, MODE),
    "rmdir": _s(PATH),
    "creat": _s(PATH, MODE, ret=FDR),
    "link": _s(PATH, PATH),
    "unlink": _s(PATH),
    "symlink": _s(PATH, PATH),
    "readlink": _s(PATH, BUF_OUT, Exit(ULONG)),
    # 90
    "chmod": _s(PATH, MODE),
    "fchmod": _s(FD, MODE),
    "chown": _s(PATH, UID, UID),
    "fchown": _s(FD, UID, UID),
    "lchown": _s(PATH, UID, UID),
    "umask": _s(MODE, ret=Ret("o", nf=True)),
    "gettimeofday": _s(X.TIMEVAL_OUT, struct_out(S.timezone, "timezone")),
    "getrlimit": _s(RLIMIT_RES, X.RLIMIT_OUT),
    "getrusage": _s(Enum(F.RUSAGE_WHO, "RUSAGE_???"), struct_out(S.rusage, "rusage")),
    "sysinfo": _s(struct_out(S.sysinfo, "sysinfo")),
    # 100
    "times": _s(struct_out(S.tms, "tms")),
    "ptrace": _l(X.ptrace_layout),
    "getuid": _s(ret=Ret(nf=True)),
    "syslog": _l(X.syslog_layout),
    "getgid": _s(ret=Ret(nf=True)),
    "setuid": _s(UID),
    "setgid": _s(UID),
    "geteuid": _s(ret=Ret(nf=True)),
    "getegid": _s(ret=Ret(nf=True)),
    "setpgid": _s(PID, PID),
    # 110
    "getppid": _s(ret=Ret("d", nf=True)),
    "getpgrp": _s(ret=Ret("d", nf=True)),
    "setsid": _s(),
    "setreuid": _s(UID, UID),
    "setregid": _s(UID, UID),
    "getgroups": _s(INT, X.Groups(when=EXIT)),
    "setgroups": _s(INT, X.Groups(0)),
    "setresuid": _s(UID, UID, UID),
    "getresuid": _s(X.UID_OUT, X.UID_OUT, X.UID_OUT),
    "setresgid": _s(UID, UID, UID),
    # 120
    "getresgid": _s(X.UID_OUT, X.UID_OUT, X.UID_OUT),
    "getpgid": _s(PID, ret=Ret("d")),
    "setfsuid": _s(UID, ret=Ret(nf=True)),
    "setfsgid": _s(UID, ret=Ret(nf=True)),
    "getsid": _s(PID, ret=Ret("d")),
    "capget": _s(struct_in(S.cap_header, "cap_header"), struct_out(S.cap_data, 24)),
    "capset": _s(struct_in(S.cap_header, "cap_header"), struct_in(S.cap_data, 24)),
    "rt_sigpending": _s(SigSet(1, EXIT, min_size=1), Exit(SIZE)),
    "rt_sigtimedwait": _s(
        SigSet(3),
        X.SIGINFO_OUT,
        Exit(TIMESPEC),
        Exit(SIZE),
        ret=Ret(fn=X.sigtimedwait_return),
    ),
    "rt_sigqueueinfo": _s(PID, SIG, X.SIGINFO),
    # 130
    "rt_sigsuspend": _s(SigSet(1), SIZE),
    "sigaltstack": _s(struct_in(S.stack_t, "stack_t"), struct_out(S.stack_t, "stack_t")),
    "utime": _s(PATH, X.UTIMBUF),
    "mknod": _l(X.mknod_layout(0)),
    "uselib": _s(PATH),
    "personality": _s(Fn(X._personality), ret=Ret(nf=True, fn=X.personality_return)),
    "ustat": _s(Fn(X._ustat_dev), Exit(PTR)),
    "statfs": _s(PATH, STATFS_OUT),
    "fstatfs": _s(FD, STATFS_OUT),
    "sysfs": _s(*raw(3)),
    # 140
    "getpriority": _s(Enum(F.PRIORITIES, "PRIO_???"), INT),
    "setpriority": _s(Enum(F.PRIORITIES, "PRIO_???"), INT, INT),
    "sched_setparam": _s(PID, IntP("d")),
    "sched_getparam": _s(PID, IntP("d", EXIT)),
    "sched_setscheduler": _s(PID, SCHED_POLICY, IntP("d")),
    "sched_getscheduler": _s(PID, ret=Ret(fn=X.sched_policy_return)),
    "sched_get_priority_max": _s(SCHED_POLICY),
    "sched_get_priority_min": _s(SCHED_POLICY),
    "sched_rr_get_interval": _s(PID, X.TIMESPEC_OUT),
    "mlock": _s(PTR, SIZE),
    # 150
    "munlock": _s(PTR, SIZE),
    "mlockall": _s(Flags(F.MLOCKALL_FLAGS, "MCL_???")),
    "munlockall": _s(),
    "vhangup": _s(),
    "modify_ldt": _l(X.ldt_layout, Ret("ldt")),
    "pivot_root": _s(PATH, PATH),
    "_sysctl": _s(PTR),
    "prctl": _l(X.prctl_layout, Ret(fn=X.prctl_return)),
    "arch_prctl": _l(X.arch_prctl_layout),
    "adjtimex": _s(struct_out(S.timex, "timex"), ret=Ret(fn=X.adjtimex_return)),
    # 160
    "setrlimit": _s(RLIMIT_RES, X.RLIMIT),
    "chroot": _s(PATH),
    "sync": _s(),
    "acct": _s(PATH),
    "settimeofday": _s(TIMEVAL, struct_in(S.timezone, "timezone")),
    "mount": _l(X.mount_layout),
    "umount2": _s(PATH, Flags(F.UMOUNT_FLAGS, "MNT_???")),
    "swapon": _s(PATH, Fn(X._swap_flags)),
    "swapoff": _s(PATH),
    "reboot": _l(X.reboot_layout),
    # 170
    "sethostname": _l(X.sethostname_layout),
    "setdomainname": _l(X.sethostname_layout),
    "iopl": _s(INT),
    "ioperm": _s(HEX, HEX, INT),
    "create_module": _s(*raw(2)),
    "init_module": _s(PTR, ULONG, STR),
    "delete_module": _s(STR, Flags(F.DELETE_MODULE_FLAGS, "O_???")),
    "get_kernel_syms": _s(*raw(1)),
    "query_module": _s(*raw(5)),
    "quotactl": _l(X.quotactl_layout),
    # 180
    "nfsservctl": _s(*raw(3)),
    "getpmsg": _s(*raw(5)),
    "putpmsg": _s(*raw(5)),
    "afs_syscall": _s(*raw(5)),
    "tuxcall": _s(*raw(3)),
    "security": _s(*raw(3)),
    "gettid": _s(ret=Ret("d", nf=True)),
    "readahead": _s(FD, LONG, ULONG),
    "setxattr": _s(PATH, STR, X.XattrValue(), SIZE, Flags(F.XATTR_FLAGS, "XATTR_???")),
    "lsetxattr": _s(PATH, STR, X.XattrValue(), SIZE, Flags(F.XATTR_FLAGS, "XATTR_???")),
    # 190
    "fsetxattr": _s(FD, STR, X.XattrValue(), SIZE, Flags(F.XATTR_FLAGS, "XATTR_???")),
    "getxattr": _s(PATH, STR, X.XattrValue(EXIT), Exit(SIZE)),
    "lgetxattr": _s(PATH, STR, X.XattrValue(EXIT), Exit(SIZE)),
    "fgetxattr": _s(FD, STR, X.XattrValue(EXIT), Exit(SIZE)),
    "listxattr": _s(PATH, X.XattrList(), Exit(SIZE)),
    "llistxattr": _s(PATH, X.XattrList(), Exit(SIZE)),
    "flistxattr": _s(FD, X.XattrList(), Exit(SIZE)),
    "removexattr": _s(PATH, STR),
    "lremovexattr": _s(PATH, STR),
    "fremovexattr": _s(FD, STR),
    # 200
    "tkill": _s(PID, SIG),
    "time": _s(X.TIME_OUT, ret=Ret(fn=X.time_return)),
    "futex": _l(X.futex_layout),
    "sched_setaffinity": _s(PID, UINT, X.CpuSet()),
    "sched_getaffinity": _s(PID, UINT, X.CpuSet(EXIT)),
    "set_thread_area": _s(
        X.USER_DESC, ret=Ret(fn=X.set_thread_area_return, reads=X.USER_DESC_READS)
    ),
    "io_setup": _s(UINT, X.KPTR_OUT),
    "io_destroy": _s(PTR),
    "io_getevents": _s(PTR, LONG, LONG, X.IoEvents(), Exit(TIMESPEC)),
    "io_submit": _s(PTR, LONG, PTR),
    # 210
    "io_cancel": _s(PTR, PTR, struct_out(X.io_event, 32)),
    "get_thread_area": _s(X.ThreadAreaOut(), ret=Ret(reads=X.USER_DESC_READS)),
    "lookup_dcookie": _s(ULONG, BUF_OUT, Exit(ULONG)),
    "epoll_create": _s(INT, ret=FDR),
    "epoll_ctl_old": _s(*raw(4)),
    "epoll_wait_old": _s(*raw(4)),
    "remap_file_pages": _s(PTR, SIZE, X.PROT, ULONG, X.MMAP_FLAGS),
    "getdents64": _s(FD, X.Dirents(19), Exit(UINT)),
    "set_tid_address": _s(HEX),
    "restart_syscall": _s(Fn(lambda c, v: "<... resuming interrupted system call ...>")),
    # 220
    "semtimedop": _s(INT, X.SemBufs(2), UINT, TIMESPEC),
    "fadvise64": _s(FD, LONG, ULONG, Enum(F.FADVISE, "POSIX_FADV_???")),
    "timer_create": _s(CLOCK, struct_in(S.sigevent, "sigevent"), IntP("d", EXIT)),
    "timer_settime": _s(INT, CLOCK_FLAGS, X.ITIMERSPEC, X.ITIMERSPEC_OUT),
    "timer_gettime": _s(INT, X.ITIMERSPEC_OUT),
    "timer_getoverrun": _s(INT),
    "timer_delete": _s(INT),
    "clock_settime": _s(CLOCK, TIMESPEC),
    "clock_gettime": _s(CLOCK, X.TIMESPEC_OUT),
    "clock_getres": _s(CLOCK, X.TIMESPEC_OUT),
    # 230
    "clock_nanosleep": _s(CLOCK, CLOCK_FLAGS, TIMESPEC, X.SleepRemainder(1)),
    "exit_group": _s(INT, ret=NONE),
    "epoll_wait": _s(FD, X.EpollEvents(), Exit(INT), Exit(INT)),
    "epoll_ctl": _l(X.epoll_ctl_layout),
    "tgkill": _s(PID, PID, SIG),
    "utimes": _s(PATH, X.Utimes()),
    "vserver": _s(*raw(5)),
    "mbind": _s(PTR, ULONG, X.MPOL_MODE, X.NodeMask(4), ULONG, Flags(F.MBIND_FLAGS, "MPOL_???")),
    "set_mempolicy": _s(X.MPOL_MODE32, X.NodeMask(2), ULONG),
    "get_mempolicy": _s(
        Struct(X.get_mempolicy_mode, 4, EXIT),
        X.NodeMask(2, EXIT),
        Exit(ULONG),
        Exit(PTR),
        Exit(Flags(F.GET_MEMPOLICY_FLAGS, "MPOL_???", 64)),
    ),
    # 240
    "mq_open": _l(X.mq_open_layout, FDR),
    "mq_unlink": _s(PATH),
    "mq_timedsend": _s(FD, BUF_IN2, SIZE, UINT, TIMESPEC),
    "mq_timedreceive": _s(FD, BUF_OUT, Exit(SIZE), IntP("u", EXIT), Exit(TIMESPEC)),
    "mq_notify": _s(FD, struct_in(S.sigevent, "sigevent")),
    "mq_getsetattr": _s(FD, struct_in(S.mq_attr, "mq_attr"), struct_out(S.mq_attr, "mq_attr")),
    "kexec_load": _s(PTR, ULONG, PTR, Fn(X._kexec_flags)),
    "waitid": _l(X.waitid_layout),
    "add_key": _s(STR, STR, Buf(3), ULONG, Fn(X._key_serial)),
    "request_key": _s(STR, STR, STR, Fn(X._key_serial)),
    # 250
    "keyctl": _l(X.keyctl_layout),
    "ioprio_set": _s(Enum(F.IOPRIO_WHO, "IOPRIO_WHO_???"), INT, Fn(X._ioprio_value)),
    "ioprio_get": _s(Enum(F.IOPRIO_WHO, "IOPRIO_WHO_???"), INT, ret=Ret(fn=X.ioprio_return)),
    "inotify_init": _s(ret=FDR),
    "inotify_add_watch": _s(FD, PATH, Flags(F.IN_MASK, "IN_???")),
    "inotify_rm_watch": _s(FD, INT),
    "migrate_pages": _s(PID, ULONG, X.NodeMask(1), X.NodeMask(1)),
    "openat": _l(X.openat_layout, FDR),
    "mkdirat": _s(DIRFD, PATH, MODE),
    "mknodat": _l(X.mknod_layout(1)),
    # 260
    "fchownat": _s(DIRFD, PATH, UID, UID, AT_FLAGS),
    "futimesat": _s(DIRFD, PATH, X.Utimes()),
    "newfstatat": _s(DIRFD, PATH, X.STAT_OUT, Exit(AT_FLAGS)),
    "unlinkat": _s(DIRFD, PATH, AT_FLAGS),
    "renameat": _s(DIRFD, PATH, DIRFD, PATH),
    "linkat": _s(DIRFD, PATH, DIRFD, PATH, AT_FLAGS),
    "symlinkat": _s(PATH, DIRFD, PATH),
    "readlinkat": _s(DIRFD, PATH, BUF_OUT, Exit(ULONG)),
    "fchmodat": _s(DIRFD, PATH, MODE),
    "faccessat": _s(DIRFD, PATH, ACCESS),
    # 270
    "pselect6": _s(
        INT,
        X.FdSet(),
        X.FdSet(),
        X.FdSet(),
        TIMESPEC,
        X.PselectSigmask(),
        ret=Ret(fn=X.select_return(True), reads=SELECT_READS),
    ),
    "ppoll": _s(
        X.PollFds(),
        UINT,
        TIMESPEC,
        SigSet(4),
        ULONG,
        ret=Ret(fn=X.poll_return(True), reads=POLL_READS + ((2, Footprint(EXIT, "bytes", 16)),)),
    ),
    "unshare": _s(Fn(X._unshare_flags)),
    "set_robust_list": _s(PTR, SIZE),
    "get_robust_list": _s(PID, X.KPTR_OUT, IntP("U", EXIT)),
    "splice": _s(
        FD, X.InOutU64(True), FD, X.InOutU64(True), SIZE, Flags(F.SPLICE_FLAGS, "SPLICE_F_???")
    ),
    "tee": _s(FD, FD, SIZE, Flags(F.SPLICE_FLAGS, "SPLICE_F_???")),
    "sync_file_range": _s(FD, LONG, LONG, Flags(F.SYNC_FILE_RANGE_FLAGS, "SYNC_FILE_RANGE_???")),
    "vmsplice": _s(FD, X.Iov(2), SIZE, Flags(F.SPLICE_FLAGS, "SPLICE_F_???")),
    "move_pages": _s(
        PID,
        ULONG,
        X.PageAddrs(),
        X.NodeInts(),
        X.PageStatus(),
        Exit(Flags(F.MOVE_PAGES_FLAGS, "MPOL_???")),
    ),
    # 280
    "utimensat": _s(DIRFD, PATH, X.Utimes(nsec=True), AT_FLAGS),
    "epoll_pwait": _s(FD, X.EpollEvents(), Exit(INT), Exit(INT), SigSet(5, EXIT), Exit(SIZE)),
    "signalfd": _s(FD, SigSet(2), SIZE, ret=FDR),
    "timerfd_create": _s(CLOCK, Flags(F.TFD_FLAGS, "TFD_???"), ret=FDR),
    "eventfd": _s(UINT, ret=FDR),
    "fallocate": _s(FD, Flags(F.FALLOC_FLAGS, "FALLOC_FL_???"), LONG, LONG),
    "timerfd_settime": _s(FD, Flags(F.TFD_FLAGS, "TFD_???"), X.ITIMERSPEC, X.ITIMERSPEC_OUT),
    "timerfd_gettime": _s(FD, X.ITIMERSPEC_OUT),
    "accept4": _s(FD, SOCKLEN(2), SOCKLEN(2, True), Exit(SOCK_FLAGS), ret=FDR),
    "signalfd4": _s(FD, SigSet(2), SIZE, Flags(F.SFD_FLAGS, "SFD_???"), ret=FDR),
    # 290
    "eventfd2": _s(UINT, Flags(F.EFD_FLAGS, "EFD_???"), ret=FDR),
    "epoll_create1": _s(Flags(F.EPOLL_FLAGS, "EPOLL_???"), ret=FDR),
    "dup3": _s(FD, FD, O_FLAGS, ret=FDR),
    "pipe2": _s(X.FD_PAIR_OUT, Exit(O_FLAGS)),
    "inotify_init1": _s(Flags(F.IN_INIT_FLAGS, "IN_???"), ret=FDR),
    "preadv": _s(FD, X.Iov(2, EXIT), Exit(ULONG), Exit(LONG)),
    "pwritev": _s(FD, X.Iov(2), ULONG, LONG),
    "rt_tgsigqueueinfo": _s(PID, PID, SIG, X.SIGINFO),
    "perf_event_open": _s(
        PTR, PID, INT, FD, Flags(F.PERF_OPEN_FLAGS, "PERF_FLAG_???", 64), ret=FDR
    ),
    "recvmmsg": _s(FD, X.MMsgHdrs(True), Exit(UINT), Exit(MSG_FLAGS), Exit(TIMESPEC)),
    # 300
    "fanotify_init": _s(Fn(X._fanotify_init_flags), OpenFlags(), ret=FDR),
    "fanotify_mark": _s(
        FD,
        Flags(F.FAN_MARK_FLAGS, "FAN_MARK_???"),
        Flags(X.FAN_EVENTS, "FAN_???", 64),
        Fn(X._fanotify_dirfd),
        PATH,
    ),
    "prlimit64": _s(PID, RLIMIT_RES, X.RLIMIT, X.RLIMIT_OUT),
    "name_to_handle_at": _s(
        DIRFD, PATH, X.FileHandleOut(), IntP("d", EXIT), Exit(X.NAME_TO_HANDLE_FLAGS)
    ),
    "open_by_handle_at": _s(FD, X.FileHandleIn(), OpenFlags(), ret=FDR),
    "clock_adjtime": _s(CLOCK, struct_out(S.timex, "timex"), ret=Ret(fn=X.adjtimex_return)),
    "syncfs": _s(FD),
    "sendmmsg": _s(FD, X.MMsgHdrs(False), Exit(UINT), Exit(MSG_FLAGS)),
    "setns": _s(FD, Flags(F.SETNS_TYPES, "CLONE_NEW???")),
    "getcpu": _s(IntP("u", EXIT), IntP("u", EXIT), Exit(PTR)),
    # 310
    "process_vm_readv": _s(
        PID, X.Iov(2, EXIT), Exit(ULONG), X.Iov(4, EXIT, bases=False), Exit(ULONG), Exit(ULONG)
    ),
    "process_vm_writev": _s(PID, X.Iov(2), ULONG, X.Iov(4, bases=False), ULONG, ULONG),
    "kcmp": _l(X.kcmp_layout),
    "finit_module": _s(FD, STR, Flags(F.MODULE_INIT_FLAGS, "MODULE_INIT_???")),
    "sched_setattr": _s(PID, X.SchedAttrSet(), Exit(UINT)),
    "sched_getattr": _s(PID, X.SchedAttr(EXIT), Exit(UINT), Exit(UINT)),
    "renameat2": _s(DIRFD, PATH, DIRFD, PATH, Flags(F.RENAME_FLAGS, "RENAME_??")),
    "seccomp": _l(X.seccomp_layout),
    "getrandom": _s(Buf(RET, EXIT, hexed=True), Exit(SIZE), Exit(Fn(X._getrandom_flags))),
    "memfd_create": _s(CStr(250), X.MEMFD_FLAGS, ret=FDR),
    # 320
    "kexec_file_load": _s(FD, FD, ULONG, Buf(2), Flags(F.KEXEC_FILE_FLAGS, "KEXEC_FILE_???", 64)),
    "bpf": _l(X.bpf_layout),
    "execveat": _s(DIRFD, PATH, StringArray(), StringArray(count_only=True), AT_FLAGS),
    "userfaultfd": _s(Flags(F.UFFD_FLAGS, "UFFD_???"), ret=FDR),
    "membarrier": _l(X.membarrier_layout, Ret(fn=X.membarrier_return)),
    "mlock2": _s(PTR, SIZE, Flags(F.MLOCK_FLAGS, "MLOCK_???")),
    "copy_file_range": _s(FD, X.InOutU64(True), FD, X.InOutU64(True), SIZE, UINT),
    "preadv2": _s(FD, X.Iov(2, EXIT), Exit(ULONG), Exit(LONG), Exit(Flags(F.RWF_FLAGS, "RWF_???"))),
    "pwritev2": _s(FD, X.Iov(2), ULONG, LONG, Flags(F.RWF_FLAGS, "RWF_???")),
    "pkey_mprotect": _s(PTR, SIZE, X.PROT, INT),
    # 330
    "pkey_alloc": _l(X.pkey_alloc_layout),
    "pkey_free": _s(INT),
    "statx": _s(
        DIRFD,
        PATH,
        Fn(X._statx_flags),
        Flags(F.STATX_MASKS, "STATX_???"),
        struct_out(S.statx, "statx"),
    ),
    "io_pgetevents": _s(PTR, LONG, LONG, X.IoEvents(), Exit(TIMESPEC), Exit(X.PselectSigmask())),
    "rseq": _s(*raw(4)),
    # 424
    "pidfd_send_signal": _s(FD, SIG, X.SIGINFO, HEX32),
    "io_uring_setup": _s(UINT, PTR, ret=FDR),
    "io_uring_enter": _s(
        FD, UINT, UINT, Flags(F.URING_ENTER_FLAGS, "IORING_ENTER_???"), SigSet(5), ULONG
    ),
    "io_uring_register": _s(FD, Enum(F.URING_REGISTER_OPS, "IORING_REGISTER_???"), PTR, UINT),
    "open_tree": _s(DIRFD, PATH, Flags(F.OPEN_TREE_FLAGS, "OPEN_TREE_???"), ret=FDR),
    "move_mount": _s(DIRFD, PATH, DIRFD, PATH, Flags(F.MOVE_MOUNT_FLAGS, "MOVE_MOUNT_???")),
    "fsopen": _s(STR, Flags(F.FSOPEN_FLAGS, "FSOPEN_???"), ret=FDR),
    "fsconfig": _l(X.fsconfig_layout),
    "fsmount": _s(
        FD,
        Flags(F.FSMOUNT_FLAGS, "FSMOUNT_???"),
        Flags(F.MOUNT_ATTR_FLAGS, "MOUNT_ATTR_???"),
        ret=FDR,
    ),
    "fspick": _s(DIRFD, PATH, Flags(F.FSPICK_FLAGS, "FSPICK_???"), ret=FDR),
    # 434
    "pidfd_open": _s(PID, Flags(F.PIDFD_OPEN_FLAGS, "PIDFD_???"), ret=FDR),
    "clone3": _s(X.Clone3Args(), Exit(ULONG), ret=Ret("d")),
    "close_range": _s(UINT, UINT, Flags(F.CLOSE_RANGE_FLAGS, "CLOSE_RANGE_???")),
    "openat2": _s(DIRFD, PATH, X.OpenHow(), ULONG, ret=FDR),
    "pidfd_getfd": _s(FD, INT, HEX32, ret=FDR),
    "faccessat2": _s(DIRFD, PATH, ACCESS, Flags(F.FACCESSAT_FLAGS, "AT_???")),
    "process_madvise": _s(FD, X.Iov(2, bases=False), ULONG, Enum(F.MADVISE, "MADV_???"), HEX32),
    "epoll_pwait2": _s(FD, X.EpollEvents(), Exit(INT), X.TIMESPEC_OUT, SigSet(5, EXIT), Exit(SIZE)),
    "mount_setattr": _s(DIRFD, PATH, Flags(F.MOUNT_SETATTR_FLAGS, "AT_???"), PTR, ULONG, ret=FDR),
    "quotactl_fd": _l(X.quotactl_fd_layout),
    # 444
    "landlock_create_ruleset": _s(
        PTR, ULONG, Flags(F.LANDLOCK_CREATE_FLAGS, "LANDLOCK_CREATE_RULESET_???"), ret=FDR
    ),
    "landlock_add_rule": _s(FD, Enum(F.LANDLOCK_RULE_TYPES, "LANDLOCK_RULE_???"), PTR, HEX32),
    "landlock_restrict_self": _s(FD, HEX32),
    "memfd_secret": _s(Flags(F.MEMFD_SECRET_FLAGS), ret=FDR),
    "process_mrelease": _s(FD, HEX32),
    "futex_waitv": _s(X.Waiters(), UINT, HEX32, TIMESPEC, Enum(F.CLOCK_IDS, "CLOCK_???")),
    "set_mempolicy_home_node": _s(PTR, ULONG, ULONG, HEX),
}

#: Calls that do not return to their caller when they succeed: their line ends at entry
#: with ``= ?``.
NO_RETURN = frozenset(name for name, sig in SIGNATURES.items() if sig.ret is NONE)


def signature(name: str) -> Sig | None:
    """The signature of system call *name*, or None (a number the 6.1 table lacks)."""
    return SIGNATURES.get(name)


def footprints(name: str, regs: tuple[int, ...]) -> list[tuple[int, Footprint]]:
    """The guest memory call *name* reads with these registers: ``(register index,
    footprint)`` of each argument that points at memory, then what its return decoration
    reads (:attr:`Ret.reads`)."""
    sig = SIGNATURES.get(name)
    if sig is None:
        return []
    out = []
    for index, kind in enumerate(sig.kinds(regs)):
        fp = kind.footprint()
        if fp is not None:
            reg = getattr(kind, "index", index)
            inner = getattr(kind, "kind", None)
            if inner is not None and hasattr(inner, "index"):
                reg = inner.index
            out.append((reg, fp))
    out.extend(sig.ret.reads)
    return out


def _check_table() -> None:
    names = set(SYSCALLS_X86_64.values())
    missing = names - set(SIGNATURES)
    extra = set(SIGNATURES) - names
    assert not missing and not extra, (sorted(missing), sorted(extra))


_check_table()
