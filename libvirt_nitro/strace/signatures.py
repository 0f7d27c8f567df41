"""Per-syscall signatures (x86-64): the typed arguments of each decoded call, and how its
return value prints.

``SIGNATURES[name]`` is a tuple of :class:`~.args.Arg`, or a function of the six raw
arguments giving one when the layout depends on them (``futex``'s op, ``clone``'s flags,
``fcntl``'s command). ``RETURNS[name]`` formats the return value when the plain
``format_return`` is not what strace prints (addresses, ``?``, ``(Timeout)``...).
"""

from __future__ import annotations

from collections.abc import Callable

from ..linux import flags as F
from ..linux import format_return, to_signed64
from . import structs
from .args import (
    Arg,
    Context,
    buffer_in,
    buffer_out,
    buffer_out_hex,
    dirfd,
    enum,
    fd_pair,
    flags,
    hexa,
    int_out,
    integer,
    mode,
    oflags,
    path,
    ptr,
    s32,
    signal,
    sigset_ptr,
    slong,
    string_array,
    string_array_count,
    struct_at,
    ulong,
    ulong_out,
    unsigned,
)
from .memory import read, read_s32
from .structs import SIZES, hex_c
from .values import Unreadable, Value
from .xlat import MASK32, flag_set, open_flags, signal_name, value_of, xval

__all__ = ["SIGNATURES", "RETURNS", "Signature"]

Signature = tuple[Arg, ...] | Callable[[tuple[int, ...]], tuple[Arg, ...]]

FD = Arg(integer)
PATH = Arg(path)
SIZE = Arg(ulong)
INT = Arg(integer)
PTR = Arg(ptr)
HEX = Arg(hexa)
MODE = Arg(mode)
DIRFD = Arg(dirfd)
PID = Arg(integer)
SIGNAL = Arg(signal)
OFLAGS = Arg(oflags)
AT_FLAGS = Arg(flags(F.AT_FLAGS))


def _out(decoder, size: int) -> Arg:
    return Arg(struct_at(decoder, size), at_exit=True)


def _in(decoder, size: int) -> Arg:
    return Arg(struct_at(decoder, size, only_on_success=False))


STAT_OUT = _out(structs.stat, SIZES["stat"])
TIMESPEC_IN = _in(structs.timespec, SIZES["timespec"])


# -- calls whose layout depends on their arguments ---------------------------------------

_MAP_TYPE = value_of(F.MAP_CONSTANTS, "MAP_TYPE")
_MAP_HUGE_SHIFT = value_of(F.MAP_CONSTANTS, "MAP_HUGE_SHIFT")
_MAP_HUGE_MASK = value_of(F.MAP_CONSTANTS, "MAP_HUGE_MASK")


def _mmap_flags(ctx: Context, v: int) -> str:
    v &= MASK32
    parts = [xval(v & _MAP_TYPE, F.MAP_TYPES)]
    rest = v & ~_MAP_TYPE & ~(_MAP_HUGE_MASK << _MAP_HUGE_SHIFT)
    if rest:
        parts.append(flag_set(rest, F.MAP_FLAGS))
    huge = (v >> _MAP_HUGE_SHIFT) & _MAP_HUGE_MASK
    if huge:
        parts.append(f"{huge}<<MAP_HUGE_SHIFT")
    return "|".join(parts)


_CSIGNAL = value_of(F.CLONE_CONSTANTS, "CSIGNAL")
_C = dict(F.CLONE_FLAGS)


def _clone_flags(ctx: Context, v: int) -> str:
    sig = v & _CSIGNAL
    rest = v & ~_CSIGNAL
    if not rest:
        return signal_name(sig) if sig else "0"
    text = flag_set(rest, F.CLONE_FLAGS)
    return f"{text}|{signal_name(sig)}" if sig else text


def _clone(args: tuple[int, ...]) -> tuple[Arg, ...]:
    # x86-64: clone(flags, stack, parent_tid, child_tid, tls); strace prints the stack first.
    fl = args[0]
    out = [
        Arg(lambda ctx, v: ptr(ctx, ctx.args[1]), label="child_stack="),
        Arg(lambda ctx, v: _clone_flags(ctx, ctx.args[0]), label="flags="),
    ]
    if fl & (_C["CLONE_PARENT_SETTID"] | _C["CLONE_PIDFD"]):
        out.append(Arg(lambda ctx, v: int_out(ctx, ctx.args[2]), True, "parent_tid="))
    if fl & _C["CLONE_SETTLS"]:
        out.append(Arg(lambda ctx, v: ptr(ctx, ctx.args[4]), True, "tls="))
    if fl & (_C["CLONE_CHILD_SETTID"] | _C["CLONE_CHILD_CLEARTID"]):
        out.append(Arg(lambda ctx, v: ptr(ctx, ctx.args[3]), True, "child_tidptr="))
    return tuple(out)


_FUTEX_PRIVATE = value_of(F.FUTEX_CONSTANTS, "FUTEX_PRIVATE_FLAG")
_FUTEX_CLOCK_RT = value_of(F.FUTEX_CONSTANTS, "FUTEX_CLOCK_REALTIME")
_FUTEX = dict(F.FUTEX_OPS)


def _futex_op(ctx: Context, v: int) -> str:
    v &= MASK32
    cmd = v & ~(_FUTEX_PRIVATE | _FUTEX_CLOCK_RT)
    name = xval(cmd, F.FUTEX_OPS)
    if name.startswith("0x") or cmd != v & 0x7F:
        return f"{hex_c(v)} /* FUTEX_??? */"
    if v & _FUTEX_PRIVATE:
        name += "_PRIVATE"
    if v & _FUTEX_CLOCK_RT:
        name += "|FUTEX_CLOCK_REALTIME"
    return name


def _bitset(ctx: Context, v: int) -> str:
    return xval(v & MASK32, (("FUTEX_BITSET_MATCH_ANY", 0xFFFF_FFFF),))


def _futex(args: tuple[int, ...]) -> tuple[Arg, ...]:
    cmd = args[1] & 0x7F
    head = (PTR, Arg(_futex_op))
    val, val2 = Arg(unsigned), Arg(lambda ctx, v: str(ctx.args[3] & MASK32))
    uaddr2 = Arg(lambda ctx, v: ptr(ctx, ctx.args[4]))
    if cmd == _FUTEX["FUTEX_WAIT"]:
        return (*head, val, TIMESPEC_IN)
    if cmd in (_FUTEX["FUTEX_LOCK_PI"], _FUTEX["FUTEX_LOCK_PI2"]):
        return (*head, Arg(lambda ctx, v: TIMESPEC_IN.fmt(ctx, ctx.args[3])))
    if cmd == _FUTEX["FUTEX_WAIT_BITSET"]:
        return (*head, val, TIMESPEC_IN, Arg(lambda ctx, v: _bitset(ctx, ctx.args[5])))
    if cmd == _FUTEX["FUTEX_WAKE_BITSET"]:
        return (*head, val, Arg(lambda ctx, v: _bitset(ctx, ctx.args[5])))
    if cmd == _FUTEX["FUTEX_REQUEUE"]:
        return (*head, val, val2, uaddr2)
    if cmd in (_FUTEX["FUTEX_CMP_REQUEUE"], _FUTEX["FUTEX_CMP_REQUEUE_PI"]):
        return (*head, val, val2, uaddr2, Arg(lambda ctx, v: str(ctx.args[5] & MASK32)))
    if cmd == _FUTEX["FUTEX_WAKE_OP"]:
        return (*head, val, val2, uaddr2, Arg(lambda ctx, v: hex_c(ctx.args[5] & MASK32)))
    if cmd == _FUTEX["FUTEX_WAIT_REQUEUE_PI"]:
        return (*head, val, TIMESPEC_IN, uaddr2)
    if cmd in (_FUTEX["FUTEX_WAKE"], _FUTEX["FUTEX_FD"]):
        return (*head, val)
    if cmd in (_FUTEX["FUTEX_UNLOCK_PI"], _FUTEX["FUTEX_TRYLOCK_PI"]):
        return head
    return (*head, val, PTR, uaddr2, Arg(lambda ctx, v: hex_c(ctx.args[5] & MASK32)))


_FCNTL = dict(F.FCNTL_COMMANDS)


def _fcntl(args: tuple[int, ...]) -> tuple[Arg, ...]:
    cmd = args[1] & MASK32
    head = (FD, Arg(enum(F.FCNTL_COMMANDS, "F_???")))
    if cmd in (_FCNTL["F_GETFD"], _FCNTL["F_GETFL"], _FCNTL["F_GETOWN"], _FCNTL["F_GETSIG"]):
        return head
    if cmd in (_FCNTL["F_GETLEASE"], _FCNTL["F_GETPIPE_SZ"], _FCNTL["F_GET_SEALS"]):
        return head
    if cmd == _FCNTL["F_SETFD"]:
        return (*head, Arg(flags(F.FD_FLAGS)))
    if cmd == _FCNTL["F_SETFL"]:
        return (*head, OFLAGS)
    if cmd in (_FCNTL["F_DUPFD"], _FCNTL["F_DUPFD_CLOEXEC"], _FCNTL["F_SETOWN"]):
        return (*head, INT)
    if cmd in (_FCNTL["F_SETSIG"],):
        return (*head, SIGNAL)
    if cmd in (_FCNTL["F_SETPIPE_SZ"], _FCNTL["F_SETLEASE"], _FCNTL["F_NOTIFY"]):
        return (*head, INT)
    if cmd in (_FCNTL["F_GETLK"], _FCNTL["F_SETLK"], _FCNTL["F_SETLKW"]):
        return (*head, PTR)
    return (*head, HEX)


_ARCH = dict(F.ARCH_PRCTL_CODES)


def _arch_prctl(args: tuple[int, ...]) -> tuple[Arg, ...]:
    code = Arg(enum(F.ARCH_PRCTL_CODES, "ARCH_???"))
    if args[0] & MASK32 in (_ARCH["ARCH_GET_FS"], _ARCH["ARCH_GET_GS"]):
        return (code, Arg(ulong_out, at_exit=True))
    return (code, HEX)


def _ioctl_request(ctx: Context, v: int) -> str:
    v &= MASK32
    name = xval(v, F.IOCTL_REQUESTS)
    if not name.startswith("0x") and name != "0":
        return name
    direction = ("_IOC_NONE", "_IOC_WRITE", "_IOC_READ", "_IOC_READ|_IOC_WRITE")[v >> 30]
    kind, nr, size = (v >> 8) & 0xFF, v & 0xFF, (v >> 16) & 0x3FFF
    return f"_IOC({direction}, {hex_c(kind)}, {hex_c(nr)}, {hex_c(size)})"


def _ioctl_arg(ctx: Context, v: int) -> str:
    # strace decodes the argument of the requests it knows (a pointer here), else raw hex.
    known = any(value == ctx.args[1] & MASK32 for _, value in F.IOCTL_REQUESTS)
    return ptr(ctx, v) if known else hex_c(v)


_AF = dict(F.ADDRESS_FAMILIES)
_SOCK_TYPE_MASK = 0xF


def _socket_type(ctx: Context, v: int) -> str:
    v &= MASK32
    text = xval(v & _SOCK_TYPE_MASK, F.SOCKET_TYPES, "SOCK_???")
    rest = v & ~_SOCK_TYPE_MASK
    return text if not rest else f"{text}|{flag_set(rest, F.SOCKET_TYPE_FLAGS)}"


def _socket_protocol(ctx: Context, v: int) -> str:
    if ctx.args[0] & MASK32 in (_AF["AF_INET"], _AF["AF_INET6"]):
        return xval(v & MASK32, F.IP_PROTOCOLS, "IPPROTO_???")
    return str(s32(v))


def _sockaddr_in(length_arg: int):
    def fmt(ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        data = read(ctx.memory, v, min(ctx.args[length_arg] & MASK32, 128))
        return Unreadable(v) if data is None else structs.sockaddr(data)

    return fmt


def _sockaddr_out(len_arg: int):
    def fmt(ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        length = read_s32(ctx.memory, ctx.args[len_arg]) if ctx.args[len_arg] else None
        if ctx.failed or length is None:
            return hex(v)
        data = read(ctx.memory, v, min(length, 128))
        return Unreadable(v) if data is None else structs.sockaddr(data)

    return fmt


def _socklen(ctx: Context, v: int) -> Value:
    # Read even after a failure: the kernel left the caller's value, which strace prints.
    value = read_s32(ctx.memory, v)
    return Unreadable(v) if value is None else f"[{value}]"


def _wait_status(ctx: Context, v: int) -> Value:
    if v == 0:
        return "NULL"
    if ctx.ret is None or ctx.ret <= 0:
        return hex(v)
    status = read_s32(ctx.memory, v)
    return Unreadable(v) if status is None else structs.wait_status(status)


def _dirents(ctx: Context, v: int) -> Value:
    if ctx.ret is None or ctx.ret < 0:
        return ptr(ctx, v)
    data = read(ctx.memory, v, ctx.ret)
    if data is None:
        return Unreadable(v)
    count = structs.dirent64_count(data)
    return f"{ptr(ctx, v)} /* {count} entr{'ies' if count != 1 else 'y'} */"


def _pollfds_in(ctx: Context, v: int) -> Value:
    count = ctx.args[1] & MASK32
    if not 0 < count <= 1024:
        return ptr(ctx, v)
    data = read(ctx.memory, v, 8 * count)
    return Unreadable(v) if data is None else structs.pollfds(data)


def _fdset_in(ctx: Context, v: int) -> Value:
    nfds = s32(ctx.args[0])
    if v == 0:
        return "NULL"
    if not 0 < nfds <= 1024:
        return hex(v)
    data = read(ctx.memory, v, (nfds + 63) // 64 * 8)
    return Unreadable(v) if data is None else structs.fd_set(data, nfds)


def _rt_sigaction_signal(ctx: Context, v: int) -> str:
    return signal_name(s32(v))


def _kill_signal(ctx: Context, v: int) -> str:
    return signal_name(s32(v)) if s32(v) else "0"


def _access_mode(ctx: Context, v: int) -> str:
    v &= MASK32
    if v & ~0x7:
        return f"{hex_c(v)} /* ?_OK */"
    return flag_set(v, F.ACCESS_MODES, "F_OK")


def _resource(ctx: Context, v: int) -> str:
    return xval(v & MASK32, F.RLIMITS, "RLIMIT_???")


def _clock(ctx: Context, v: int) -> str:
    return xval(v & MASK32, F.CLOCK_IDS, "CLOCK_???")


def _sigprocmask_how(ctx: Context, v: int) -> str:
    return xval(v & MASK32, F.SIGPROCMASK_HOW, "SIG_???")


#: open(2) takes a mode only with O_CREAT or O_TMPFILE; strace prints it only then.
_O_CREATE_MASK = value_of(F.OPEN_FLAGS, "O_CREAT") | value_of(F.OPEN_FLAGS, "__O_TMPFILE")

SIGACTION_IN = _in(structs.kernel_sigaction, SIZES["sigaction"])
SIGACTION_OUT = _out(structs.kernel_sigaction, SIZES["sigaction"])


SIGNATURES: dict[str, Signature] = {
    "read": (FD, Arg(buffer_out, at_exit=True), SIZE),
    "write": (FD, Arg(buffer_in(2)), SIZE),
    "pread64": (FD, Arg(buffer_out, at_exit=True), SIZE, Arg(slong)),
    "pwrite64": (FD, Arg(buffer_in(2)), SIZE, Arg(slong)),
    "open": lambda a: (PATH, OFLAGS, MODE) if a[1] & _O_CREATE_MASK else (PATH, OFLAGS),
    "openat": lambda a: (
        (DIRFD, PATH, OFLAGS, MODE) if a[2] & _O_CREATE_MASK else (DIRFD, PATH, OFLAGS)
    ),
    "close": (FD,),
    "stat": (PATH, STAT_OUT),
    "lstat": (PATH, STAT_OUT),
    "fstat": (FD, STAT_OUT),
    "newfstatat": (DIRFD, PATH, STAT_OUT, AT_FLAGS),
    "mmap": (PTR, SIZE, Arg(flags(F.PROT_FLAGS, "PROT_NONE")), Arg(_mmap_flags), FD, HEX),
    "mprotect": (PTR, SIZE, Arg(flags(F.PROT_FLAGS, "PROT_NONE"))),
    "munmap": (PTR, SIZE),
    "brk": (PTR,),
    "ioctl": (FD, Arg(_ioctl_request), Arg(_ioctl_arg)),
    "access": (PATH, Arg(_access_mode)),
    "faccessat": (DIRFD, PATH, Arg(_access_mode)),
    "pipe": (Arg(fd_pair, at_exit=True),),
    "pipe2": (Arg(fd_pair, at_exit=True), Arg(flags(F.OPEN_FLAGS))),
    "dup": (FD,),
    "dup2": (FD, FD),
    "dup3": (FD, FD, Arg(flags(F.OPEN_FLAGS))),
    "clone": _clone,
    "fork": (),
    "vfork": (),
    "execve": (PATH, Arg(string_array), Arg(string_array_count)),
    "exit": (INT,),
    "exit_group": (INT,),
    "wait4": (
        PID,
        Arg(_wait_status, at_exit=True),
        Arg(flags(F.WAIT_OPTIONS)),
        PTR,
    ),
    "kill": (PID, Arg(_kill_signal)),
    "tkill": (PID, Arg(_kill_signal)),
    "tgkill": (PID, PID, Arg(_kill_signal)),
    "uname": (_out(structs.utsname, SIZES["utsname"]),),
    "fcntl": _fcntl,
    "getdents64": (FD, Arg(_dirents, at_exit=True), SIZE),
    "chdir": (PATH,),
    "fchdir": (FD,),
    "mkdir": (PATH, MODE),
    "mkdirat": (DIRFD, PATH, MODE),
    "rmdir": (PATH,),
    "unlink": (PATH,),
    "unlinkat": (DIRFD, PATH, AT_FLAGS),
    "rename": (PATH, PATH),
    "renameat": (DIRFD, PATH, DIRFD, PATH),
    "renameat2": (DIRFD, PATH, DIRFD, PATH, Arg(flags(F.RENAME_FLAGS))),
    "socket": (
        Arg(enum(F.ADDRESS_FAMILIES, "AF_???")),
        Arg(_socket_type),
        Arg(_socket_protocol),
    ),
    "connect": (FD, Arg(_sockaddr_in(2)), Arg(unsigned)),
    "bind": (FD, Arg(_sockaddr_in(2)), Arg(unsigned)),
    "listen": (FD, INT),
    "accept": (FD, Arg(_sockaddr_out(2), at_exit=True), Arg(_socklen, at_exit=True)),
    "accept4": (
        FD,
        Arg(_sockaddr_out(2), at_exit=True),
        Arg(_socklen, at_exit=True),
        Arg(flags(F.SOCKET_TYPE_FLAGS)),
    ),
    "sendto": (
        FD,
        Arg(buffer_in(2)),
        SIZE,
        Arg(flags(F.MSG_FLAGS)),
        Arg(_sockaddr_in(5)),
        Arg(unsigned),
    ),
    "recvfrom": (
        FD,
        Arg(buffer_out, at_exit=True),
        SIZE,
        Arg(flags(F.MSG_FLAGS)),
        Arg(_sockaddr_out(5), at_exit=True),
        Arg(_socklen, at_exit=True),
    ),
    "poll": (Arg(_pollfds_in), Arg(unsigned), INT),
    "select": (
        INT,
        Arg(_fdset_in),
        Arg(_fdset_in),
        Arg(_fdset_in),
        _in(structs.timeval, SIZES["timeval"]),
    ),
    "nanosleep": (TIMESPEC_IN, PTR),
    "clock_nanosleep": (
        Arg(_clock),
        Arg(flags(F.TIMER_FLAGS)),
        TIMESPEC_IN,
        PTR,
    ),
    "clock_gettime": (Arg(_clock), _out(structs.timespec, SIZES["timespec"])),
    "readlink": (PATH, Arg(buffer_out, at_exit=True), SIZE),
    "rseq": (PTR, HEX, INT, HEX),
    "getpid": (),
    "getppid": (),
    "gettid": (),
    "getuid": (),
    "geteuid": (),
    "getgid": (),
    "getegid": (),
    "futex": _futex,
    "set_tid_address": (PTR,),
    "set_robust_list": (PTR, SIZE),
    "arch_prctl": _arch_prctl,
    "prlimit64": (
        PID,
        Arg(_resource),
        _in(structs.rlimit64, SIZES["rlimit64"]),
        _out(structs.rlimit64, SIZES["rlimit64"]),
    ),
    "getrandom": (Arg(buffer_out_hex, at_exit=True), SIZE, Arg(flags(F.GETRANDOM_FLAGS))),
    "rt_sigaction": (Arg(_rt_sigaction_signal), SIGACTION_IN, SIGACTION_OUT, SIZE),
    "rt_sigprocmask": (
        Arg(_sigprocmask_how),
        Arg(sigset_ptr(3)),
        Arg(sigset_ptr(3), at_exit=True),
        SIZE,
    ),
    # The frame's mask sits on the user stack (rsp), which the Call does not carry.
    "rt_sigreturn": (),
    "sched_yield": (),
    "pause": (),
}


# -- return values -----------------------------------------------------------------------


def _address(ctx: Context, raw: int) -> str:
    text = format_return(raw)
    return text if text.startswith("-1 ") else hex(raw & ((1 << 64) - 1))


def _no_return(ctx: Context, raw: int) -> str:
    return "?"


def _fcntl_return(ctx: Context, raw: int) -> str:
    text = format_return(raw)
    cmd = ctx.args[1] & MASK32
    value = to_signed64(raw)
    if value <= 0 or text.startswith("-1 "):
        return text
    if cmd == _FCNTL["F_GETFL"]:
        return f"{hex(value)} (flags {open_flags(value)})"
    if cmd == _FCNTL["F_GETFD"]:
        return f"{hex(value)} (flags {flag_set(value, F.FD_FLAGS)})"
    return text


def _timed_out_or_failed(raw: int) -> str | None:
    """poll/select's return when it says nothing of the fds: ``0 (Timeout)``, or the error."""
    value = to_signed64(raw)
    if value == 0:
        return "0 (Timeout)"
    return format_return(raw) if value < 0 else None


def _poll_return(ctx: Context, raw: int) -> str:
    text = format_return(raw)
    value = to_signed64(raw)
    if (early := _timed_out_or_failed(raw)) is not None:
        return early
    count = ctx.args[1] & MASK32
    data = read(ctx.memory, ctx.args[0], 8 * count) if 0 < count <= 1024 else None
    if data is None:
        return text
    return f"{value} ({structs.pollfds(data, 'revents', skip_zero=True)})"


def _select_return(ctx: Context, raw: int) -> str:
    text = format_return(raw)
    value = to_signed64(raw)
    if (early := _timed_out_or_failed(raw)) is not None:
        return early
    nfds = s32(ctx.args[0])
    parts = []
    for name, index in (("in", 1), ("out", 2), ("except", 3)):
        p = ctx.args[index]
        data = read(ctx.memory, p, (nfds + 63) // 64 * 8) if p and 0 < nfds <= 1024 else None
        if data is not None and any(data):
            parts.append(f"{name} {structs.fd_set(data, nfds)}")
    tv = read(ctx.memory, ctx.args[4], SIZES["timeval"]) if ctx.args[4] else None
    if tv is not None:
        parts.append(f"left {structs.timeval(tv)}")
    return f"{value} ({', '.join(parts)})" if parts else text


RETURNS: dict[str, Callable[[Context, int], str]] = {
    "mmap": _address,
    "brk": _address,
    "exit": _no_return,
    "exit_group": _no_return,
    "fcntl": _fcntl_return,
    "poll": _poll_return,
    "select": _select_return,
}
