"""strace's own per-call logic: argument layouts that depend on other arguments, and
return-value decorations.

Only what strace itself special-cases lives here (``fcntl``'s command, ``futex``'s op,
``clone``'s flags, ``prctl``'s option, ``select``'s ready sets, ``poll``'s ``revents``...);
everything else is a plain row of :mod:`.signatures`. A *layout* function takes the six raw
registers and returns the argument kinds (:mod:`.args`), each still declarative, so that the
memory an argument reads stays derivable from its kind. A *return* function takes the
:class:`~.args.Context` and the raw ``rax`` and returns ``(format, decoration)``: the format
overriding the signature's (``x`` hex...) or None, and the text strace prints in
parentheses after the value, or None.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from ..linux import flags as F
from ..linux import to_signed64
from . import structs as S
from .args import (
    ENTRY,
    EXIT,
    RET,
    At,
    Buf,
    Context,
    CStr,
    DirFd,
    Enum,
    Exit,
    Flags,
    Fn,
    Footprint,
    Id,
    IntP,
    Kind,
    Label,
    Num,
    OpenFlags,
    Path,
    Ptr,
    Signal,
    SigSet,
    Struct,
    addr,
    array,
    buffer,
    read_cstr,
    s32,
)
from .memory import read, read_s32, read_u32, read_u64
from .structs import SIZES, hex_c
from .values import Items, Quoted, Seq, Unreadable, Value
from .xlat import MASK32, flag_set, open_flags, signal_name, value_of, xval

# -- common kinds -------------------------------------------------------------------------

FD = Num("d")
UINT_FD = Num("d")
INT = Num("d")
UINT = Num("u")
LONG = Num("d", 64)
ULONG = Num("u", 64)
HEX = Num("x", 64)
HEX32 = Num("x")
MODE = Num("o", 16)
PID = Num("d")
PTR = Ptr()
PATH = Path()
DIRFD = DirFd()
UID = Id()
SIG = Signal()
STR = CStr()


def raw(n: int) -> tuple[Kind, ...]:
    """strace's ``printargs``: *n* arguments in hex."""
    return (HEX,) * n


def struct_in(fn: Any, size: int | str) -> Struct:
    """A struct the call reads, printed at entry."""
    return Struct(fn, SIZES[size] if isinstance(size, str) else size, ENTRY)


def struct_out(fn: Any, size: int | str, ignore_error: bool = False) -> Struct:
    """A struct the kernel fills, printed at exit (its address when the call failed)."""
    return Struct(fn, SIZES[size] if isinstance(size, str) else size, EXIT, ignore_error)


def _kptr(data: bytes, ctx: Context) -> Value:
    return f"[{addr(struct.unpack('<Q', data)[0])}]"


#: A pointer the kernel writes (strace's ``printnum_kptr``/``printnum_ptr``): ``[NULL]``.
KPTR_OUT = Struct(_kptr, 8, EXIT)


def u32_in_brackets(fn: Any, when: str = ENTRY) -> Struct:
    """A pointer to a ``__u32`` printed as ``[fn(value)]`` (an ``int`` pointer whose value
    strace names: ``[SECCOMP_RET_KILL_THREAD]``)."""

    def decode(data: bytes, ctx: Context) -> Value:
        return f"[{fn(struct.unpack('<I', data)[0])}]"

    return Struct(decode, 4, when)


TIMESPEC = struct_in(S.timespec, "timespec")
TIMESPEC_OUT = struct_out(S.timespec, "timespec")
TIMEVAL = struct_in(S.timeval, "timeval")
TIMEVAL_OUT = struct_out(S.timeval, "timeval")
ITIMERSPEC = struct_in(S.itimerspec, "itimerspec")
ITIMERSPEC_OUT = struct_out(S.itimerspec, "itimerspec")
ITIMERVAL = struct_in(S.itimerval, "itimerval")
ITIMERVAL_OUT = struct_out(S.itimerval, "itimerval")
STAT_OUT = struct_out(S.stat, "stat")
RLIMIT = struct_in(S.rlimit64, "rlimit64")
RLIMIT_OUT = struct_out(S.rlimit64, "rlimit64")
SIGINFO = struct_in(S.siginfo, "siginfo")
SIGINFO_OUT = struct_out(S.siginfo, "siginfo")


# -- clocks, modes, misc ------------------------------------------------------------------


def _clock_name(ctx: Context, v: int) -> Value:
    clock = s32(v)
    if clock >= 0:
        return xval(clock, F.CLOCK_IDS, "CLOCK_???")
    if clock & 7 == 3:  # CLOCKFD
        return f"FD_TO_CLOCKID({~(clock >> 3)})"
    # CPUCLOCK_* (kernel-internal, include/linux/posix-timers.h); strace masks with 7.
    kind = "MAKE_THREAD_CPUCLOCK" if clock & 4 else "MAKE_PROCESS_CPUCLOCK"
    names = (("CPUCLOCK_PROF", 0), ("CPUCLOCK_VIRT", 1), ("CPUCLOCK_SCHED", 2))
    return f"{kind}({~(clock >> 3)}, {xval(clock & 7, names, 'CPUCLOCK_???')})"


CLOCK = Fn(_clock_name)


def _octal(mode: int) -> str:
    from .xlat import numeric_mode

    return numeric_mode(mode)


def _symbolic_mode(ctx: Context, v: int) -> Value:
    from .xlat import file_mode

    return file_mode(v & 0xFFFF)


def _ipc_mode(ctx: Context, v: int) -> Value:
    """``IPC_CREAT|IPC_EXCL|0600``."""
    flags = v & ~0o777 & MASK32
    text = flag_set(flags, F.IPC_RESOURCE_FLAGS) if flags else ""
    return (text + "|" if text else "") + _octal(v & 0o777)


# -- open ---------------------------------------------------------------------------------

_O_CREATE_MASK = value_of(F.OPEN_FLAGS, "O_CREAT") | value_of(F.OPEN_FLAGS, "__O_TMPFILE")


def open_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    return (PATH, OpenFlags(), MODE) if args[1] & _O_CREATE_MASK else (PATH, OpenFlags())


def openat_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    head = (DIRFD, PATH, OpenFlags())
    return (*head, MODE) if args[2] & _O_CREATE_MASK else head


def _open_how(ctx: Context, v: int) -> Value:
    size = ctx.args[3]
    if v == 0:
        return "NULL"
    if size < 24:
        return hex(v)
    data = read(ctx.memory, v, 24)
    if data is None:
        return Unreadable(v)
    return S.open_how(data)[:-1] + nonzero_tail(ctx, v, 24, size) + "}"


class OpenHow(Kind):
    def decode(self, ctx: Context, v: int) -> Value:
        return _open_how(ctx, v)

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "bytes", SIZES["open_how"])


# -- memory mappings ----------------------------------------------------------------------

_MAP_TYPE = value_of(F.MAP_CONSTANTS, "MAP_TYPE")
_MAP_HUGE_SHIFT = value_of(F.MAP_CONSTANTS, "MAP_HUGE_SHIFT")
_MAP_HUGE_MASK = value_of(F.MAP_CONSTANTS, "MAP_HUGE_MASK")


def _mmap_flags(ctx: Context, v: int) -> Value:
    parts = [xval(v & _MAP_TYPE, F.MAP_TYPES, "MAP_???")]
    rest = v & ~_MAP_TYPE & ~(_MAP_HUGE_MASK << _MAP_HUGE_SHIFT)
    if rest:
        parts.append(flag_set(rest, F.MAP_FLAGS))
    huge = (v >> _MAP_HUGE_SHIFT) & _MAP_HUGE_MASK
    if huge:
        parts.append(f"{huge}<<MAP_HUGE_SHIFT")
    return "|".join(parts)


MMAP_FLAGS = Fn(_mmap_flags)
PROT = Flags(F.PROT_FLAGS, "PROT_???", 64)


def mremap_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    head = (PTR, ULONG, ULONG, Flags(F.MREMAP_FLAGS, "MREMAP_???", 64))
    both = value_of(F.MREMAP_FLAGS, "MREMAP_MAYMOVE") | value_of(F.MREMAP_FLAGS, "MREMAP_FIXED")
    return (*head, PTR) if args[3] & both == both else head


def _mincore_vec(ctx: Context, v: int) -> Value:
    if ctx.failed:
        return addr(v)
    length = ctx.args[1]
    nmemb = (length + 4095) // 4096
    return array(ctx, v, nmemb, 1, lambda d, c: str(d[0] & 1))


class Mincore(Kind):
    when = EXIT

    def decode(self, ctx: Context, v: int) -> Value:
        return _mincore_vec(ctx, v)

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "array", 1, count_arg=1, capped=True)


# -- processes ----------------------------------------------------------------------------

_CSIGNAL = value_of(F.CLONE_CONSTANTS, "CSIGNAL")
_C = dict(F.CLONE_FLAGS)


def _clone_flags(ctx: Context, v: int) -> Value:
    sig = v & _CSIGNAL
    rest = v & ~_CSIGNAL
    if not rest:
        return signal_name(sig) if sig else "0"
    text = flag_set(rest, F.CLONE_FLAGS, dflt="CLONE_???")
    return f"{text}|{signal_name(sig)}" if sig else text


def _tid_out(data: bytes, ctx: Context) -> Value:
    return f"[{struct.unpack('<i', data)[0]}]"


def clone_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    """x86-64 clone(flags, stack, parent_tid, child_tid, tls); strace prints the stack
    first, then the output pointers at exit."""
    fl = args[0]
    out: list[Kind] = [
        Label("child_stack=", At(1, PTR)),
        Label("flags=", At(0, Fn(_clone_flags))),
    ]
    if fl & (_C["CLONE_PARENT_SETTID"] | _C["CLONE_PIDFD"]):
        out.append(Label("parent_tid=", At(2, Struct(_tid_out, 4, EXIT))))
    if fl & _C["CLONE_SETTLS"]:
        out.append(Label("tls=", At(4, Exit(PTR))))
    if fl & (_C["CLONE_CHILD_SETTID"] | _C["CLONE_CHILD_CLEARTID"]):
        out.append(Label("child_tidptr=", At(3, Exit(PTR))))
    return tuple(out)


def nonzero_tail(ctx: Context, v: int, start: int, size: int) -> str:
    """strace's ``print_nonzero_bytes``: the bytes of a struct beyond what strace knows of
    it, when the caller passed a bigger size: nothing when all zero, ``???`` unreadable,
    else ``/* bytes N..M */ "\\x.."``."""
    total = min(size, 4096)
    if start >= total:
        return ""
    data = read(ctx.memory, v + start, total - start)
    if data is None:
        return ", ???"
    if not any(data):
        return ""
    from .quote import quote_hex

    shown = data[: ctx.options.capture_bytes]
    return f", /* bytes {start}..{total - 1} */ " + quote_hex(shown, len(shown) < len(data))


class Clone3Args(Kind):
    """clone3's ``struct clone_args`` (argument 1 bytes): decoded at entry, and at exit
    ``=> {pidfd=[3], parent_tid=[12]}`` when the kernel wrote those."""

    when = EXIT

    def save(self, ctx: Context, v: int) -> Any:
        if v == 0:
            return "NULL"
        size = ctx.args[1]
        if size < 64:
            return hex(v)
        fetch = min(size, 88)
        data = read(ctx.memory, v, fetch)
        if data is None:
            return Unreadable(v)
        text = S.clone_args(data.ljust(88, b"\0"), ctx, fetch)
        return text[:-1] + nonzero_tail(ctx, v, 88, size) + "}"

    def decode(self, ctx: Context, v: int) -> Value:
        before = ctx.saved.get(ctx.index)
        if before is None:
            before = self.save(ctx, v)
        if ctx.failed or v == 0 or ctx.args[1] < 64:
            return before
        data = read(ctx.memory, v, 32)
        if data is None:
            return Seq((before, f" => {hex(v)}"))
        flags, pidfd, _child_tid, parent_tid = struct.unpack("<QQQQ", data)
        parts = []
        if flags & _C["CLONE_PIDFD"]:
            parts.append(f"pidfd={_int_at(ctx, pidfd)}")
        if flags & _C["CLONE_PARENT_SETTID"]:
            parts.append(f"parent_tid={_int_at(ctx, parent_tid)}")
        if not parts:
            return before
        return Seq((before, " => {" + ", ".join(parts) + "}"))

    def footprint(self) -> Footprint:
        return Footprint("both", "bytes", 88)


def _int_at(ctx: Context, pointer: int) -> str:
    if pointer == 0:
        return "NULL"
    value = read_s32(ctx.memory, pointer)
    return hex(pointer) if value is None else f"[{value}]"


def _wait_status(ctx: Context, v: int) -> Value:
    if ctx.ret == 0 or v == 0:
        return addr(v)
    if ctx.failed:
        return hex(v)
    status = read_s32(ctx.memory, v)
    return Unreadable(v) if status is None else S.wait_status(status)


class WaitStatus(Kind):
    when = EXIT

    def decode(self, ctx: Context, v: int) -> Value:
        return _wait_status(ctx, v)

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "bytes", 4)


class Rusage(Kind):
    """``wait4``'s rusage: printed only when a child was reaped (``ret > 0``)."""

    when = EXIT

    def decode(self, ctx: Context, v: int) -> Value:
        if (ctx.ret or 0) <= 0 or v == 0:
            return addr(v)
        data = read(ctx.memory, v, SIZES["rusage"])
        return Unreadable(v) if data is None else S.rusage(data)

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "bytes", SIZES["rusage"])


WAIT_OPTIONS = Flags(F.WAIT_OPTIONS, "W???")


def waitid_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    return (
        Enum(F.WAITID_TYPES, "P_???"),
        INT,
        SIGINFO_OUT,
        Exit(WAIT_OPTIONS),
        struct_out(S.rusage, "rusage"),
    )


# -- fcntl --------------------------------------------------------------------------------

_FCNTL = dict(F.FCNTL_COMMANDS)


def fcntl_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    cmd = args[1] & MASK32
    head = (FD, Enum(F.FCNTL_COMMANDS, "F_???"))
    c = _FCNTL
    if cmd in (c["F_GETFD"], c["F_GETFL"], c["F_GETOWN"], c["F_GETSIG"], c["F_GETPIPE_SZ"]):
        return head
    if cmd in (c["F_GETLEASE"], c["F_GET_SEALS"]):
        return head
    if cmd == c["F_SETFD"]:
        return (*head, Flags(F.FD_FLAGS, "FD_???"))
    if cmd == c["F_SETOWN"]:
        return (*head, INT)
    if cmd in (c["F_SETPIPE_SZ"], c["F_DUPFD"], c["F_DUPFD_CLOEXEC"]):
        return (*head, LONG)
    if cmd == c["F_SETFL"]:
        return (*head, OpenFlags())
    if cmd in (c["F_SETLK"], c["F_SETLKW"], c["F_OFD_SETLK"], c["F_OFD_SETLKW"]):
        return (*head, struct_in(S.flock, "flock"))
    if cmd in (c["F_GETLK"], c["F_OFD_GETLK"]):
        return (*head, struct_out(S.flock_getlk, "flock"))
    if cmd == c["F_SETOWN_EX"]:
        return (*head, struct_in(S.f_owner_ex, "f_owner_ex"))
    if cmd == c["F_GETOWN_EX"]:
        return (*head, struct_out(S.f_owner_ex, "f_owner_ex"))
    if cmd == c["F_NOTIFY"]:
        return (*head, Flags(F.DN_FLAGS, "DN_???", 64))
    if cmd == c["F_SETLEASE"]:
        return (*head, Enum(F.LOCK_TYPES, "F_???", 64))
    if cmd == c["F_ADD_SEALS"]:
        return (*head, Flags(F.SEALS, "F_SEAL_???", 64))
    if cmd == c["F_SETSIG"]:
        return (*head, Fn(lambda ctx, v: _signal64(v)))
    return (*head, HEX)


def _signal64(v: int) -> str:
    sig = s32(v)
    return signal_name(sig) if sig > 0 else str(sig)


def fcntl_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    cmd = ctx.args[1] & MASK32
    c = _FCNTL
    if ctx.failed:
        return None, None
    value = to_signed64(raw)
    if cmd in (c["F_DUPFD"], c["F_DUPFD_CLOEXEC"]):
        return "fd", None
    if cmd == c["F_GETOWN"]:
        return "d", None
    if cmd == c["F_GETFD"] and value:
        return "x", "flags " + flag_set(value, F.FD_FLAGS)
    if cmd == c["F_GETFL"]:
        return "x", "flags " + open_flags(value)
    if cmd == c["F_GETLEASE"]:
        name = next((n for n, v in F.LOCK_TYPES if v == value), None)
        return "x", name
    if cmd == c["F_GET_SEALS"] and value:
        return "x", "seals " + flag_set(value, F.SEALS)
    if cmd == c["F_GETSIG"] and value:
        return None, signal_name(value) if 0 < value <= 64 else None
    return None, None


# -- futex --------------------------------------------------------------------------------

_FUTEX_PRIVATE = value_of(F.FUTEX_CONSTANTS, "FUTEX_PRIVATE_FLAG")
_FUTEX_CLOCK_RT = value_of(F.FUTEX_CONSTANTS, "FUTEX_CLOCK_REALTIME")
_FUTEX = dict(F.FUTEX_OPS)


def _futex_op(ctx: Context, v: int) -> Value:
    v &= MASK32
    cmd = v & ~(_FUTEX_PRIVATE | _FUTEX_CLOCK_RT)
    known = {value for _, value in F.FUTEX_OPS if value < _FUTEX_PRIVATE}
    if cmd not in known:
        return f"{hex_c(v)} /* FUTEX_??? */"
    name = xval(cmd, F.FUTEX_OPS)
    if v & _FUTEX_PRIVATE:
        name += "|FUTEX_PRIVATE_FLAG" if cmd == _FUTEX["FUTEX_FD"] else "_PRIVATE"
    if v & _FUTEX_CLOCK_RT:
        if cmd not in (_FUTEX["FUTEX_WAIT"], _FUTEX["FUTEX_WAIT_BITSET"]) and cmd != _FUTEX.get(
            "FUTEX_WAIT_REQUEUE_PI"
        ):
            return f"{hex_c(v)} /* FUTEX_??? */"
        name += "|FUTEX_CLOCK_REALTIME"
    return name


def _bitset(ctx: Context, v: int) -> Value:
    return xval(v & MASK32, (("FUTEX_BITSET_MATCH_ANY", 0xFFFF_FFFF),))


def _wake_op(ctx: Context, v: int) -> Value:
    v &= MASK32
    parts = []
    op = (v >> 28) & 0xF
    if op & 8:
        parts.append("FUTEX_OP_OPARG_SHIFT<<28")
    name = xval(op & 7, F.FUTEX_WAKE_OPS)
    parts.append(f"{name}<<28" + ("" if not name[0].isdigit() else " /* FUTEX_OP_??? */"))
    parts.append(f"{hex_c((v >> 12) & 0xFFF)}<<12")
    cmp_name = xval((v >> 24) & 0xF, F.FUTEX_WAKE_CMPS)
    parts.append(
        f"{cmp_name}<<24" + ("" if not cmp_name[0].isdigit() else " /* FUTEX_OP_CMP_??? */")
    )
    parts.append(hex_c(v & 0xFFF))
    return "|".join(parts)


def futex_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    cmd = args[1] & 0x7F
    head = (PTR, Fn(_futex_op))
    val, val2 = UINT, At(3, UINT)
    uaddr2 = At(4, PTR)
    f = _FUTEX
    if cmd == f["FUTEX_WAIT"]:
        return (*head, val, TIMESPEC)
    if cmd in (f["FUTEX_LOCK_PI"], f["FUTEX_LOCK_PI2"]):
        return (*head, At(3, TIMESPEC))
    if cmd == f["FUTEX_WAIT_BITSET"]:
        return (*head, val, TIMESPEC, At(5, Fn(_bitset)))
    if cmd == f["FUTEX_WAKE_BITSET"]:
        return (*head, val, At(5, Fn(_bitset)))
    if cmd == f["FUTEX_REQUEUE"]:
        return (*head, val, val2, uaddr2)
    if cmd in (f["FUTEX_CMP_REQUEUE"], f["FUTEX_CMP_REQUEUE_PI"]):
        return (*head, val, val2, uaddr2, At(5, UINT))
    if cmd == f["FUTEX_WAKE_OP"]:
        return (*head, val, val2, uaddr2, At(5, Fn(_wake_op)))
    if cmd == f["FUTEX_WAIT_REQUEUE_PI"]:
        return (*head, val, TIMESPEC, uaddr2)
    if cmd in (f["FUTEX_WAKE"], f["FUTEX_FD"]):
        return (*head, val)
    if cmd in (f["FUTEX_UNLOCK_PI"], f["FUTEX_TRYLOCK_PI"]):
        return head
    return (*head, val, PTR, uaddr2, HEX32)


# -- ioctl --------------------------------------------------------------------------------


def _ioctl_request(ctx: Context, v: int) -> Value:
    v &= MASK32
    names = [name for name, value in F.IOCTL_REQUESTS if value == v]
    if names:
        return " or ".join(names)
    direction = flag_set(v >> 30, (("_IOC_READ", 2), ("_IOC_WRITE", 1)), "_IOC_NONE")
    kind, nr, size = (v >> 8) & 0xFF, v & 0xFF, (v >> 16) & 0x3FFF
    return f"_IOC({direction}, {hex_c(kind)}, {hex_c(nr)}, {hex_c(size)})"


def _ioctl_arg(ctx: Context, v: int) -> Value:
    # strace decodes the argument of the requests it knows (printed as a pointer here when
    # its struct is not decoded), else raw hex.
    known = any(value == ctx.args[1] & MASK32 for _, value in F.IOCTL_REQUESTS)
    return addr(v) if known else hex_c(v)


IOCTL = (FD, Fn(_ioctl_request), Fn(_ioctl_arg))


# -- prctl and arch_prctl -----------------------------------------------------------------

_PR = dict(F.PRCTL_OPTIONS)
#: SUID_DUMP_* (kernel-internal, include/linux/sched/coredump.h; no UAPI header).
_SUID_DUMP = (("SUID_DUMP_DISABLE", 0), ("SUID_DUMP_USER", 1), ("SUID_DUMP_ROOT", 2))


def _pr(name: str) -> int:
    return _PR.get(name, -1)


_TAGGED = dict(F.PR_TAGGED_ADDR)


def _tagged_addr_ctrl(ctx: Context, v: int) -> Value:
    """PR_SET_TAGGED_ADDR_CTRL's control word as strace's ``sprint_tagged_addr_val``:
    ``!PR_TAGGED_ADDR_ENABLE|PR_MTE_TCF_ASYNC|0xcafe<<PR_MTE_TAG_SHIFT|0x57a80000``."""
    enable = _TAGGED["PR_TAGGED_ADDR_ENABLE"]
    tcf_mask = value_of(F.PR_MTE_TCF, "PR_MTE_TCF_MASK")
    shift, tag_mask = _TAGGED["PR_MTE_TAG_SHIFT"], _TAGGED["PR_MTE_TAG_MASK"]
    parts = ["PR_TAGGED_ADDR_ENABLE" if v & enable else "!PR_TAGGED_ADDR_ENABLE"]
    parts.append(xval(v & tcf_mask, F.PR_MTE_TCF))
    if v & tag_mask:
        parts.append(f"{(v & tag_mask) >> shift:#x}<<PR_MTE_TAG_SHIFT")
    rest = v & ~(enable | tcf_mask | tag_mask)
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def prctl_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    option = args[0] & MASK32
    head: tuple[Kind, ...] = (Enum(F.PRCTL_OPTIONS, "PR_???"),)
    rest = (HEX, HEX, HEX, HEX)
    if option in (_pr("PR_GET_KEEPCAPS"), _pr("PR_GET_SECCOMP"), _pr("PR_GET_TIMERSLACK")):
        return head
    if option in (_pr("PR_GET_TIMING"), _pr("PR_TASK_PERF_EVENTS_DISABLE")):
        return head
    if option == _pr("PR_TASK_PERF_EVENTS_ENABLE") or option == _pr("PR_GET_DUMPABLE"):
        return head
    if option in (_pr("PR_GET_SECUREBITS"), _pr("PR_GET_FP_MODE")):
        return head
    if option in (
        _pr("PR_GET_CHILD_SUBREAPER"),
        _pr("PR_GET_ENDIAN"),
        _pr("PR_GET_FPEMU"),
        _pr("PR_GET_FPEXC"),
    ):
        return (*head, IntP("u", EXIT))
    if option == _pr("PR_GET_NAME"):
        return (*head, CStr(16, EXIT))
    if option == _pr("PR_SET_NAME"):
        return (*head, CStr(15))
    if option == _pr("PR_GET_PDEATHSIG"):
        return (*head, u32_in_brackets(_signal64, EXIT))
    if option == _pr("PR_SET_PDEATHSIG"):
        return (*head, Fn(lambda ctx, v: str(v) if v > 128 else _signal64(v)))
    if option == _pr("PR_GET_TID_ADDRESS"):
        return (*head, KPTR_OUT)
    if option == _pr("PR_GET_TSC"):
        return (*head, u32_in_brackets(lambda v: xval(v, F.PR_TSC, "PR_TSC_???"), EXIT))
    if option == _pr("PR_SET_TSC"):
        return (*head, Enum(F.PR_TSC, "PR_TSC_???"))
    if option in (
        _pr("PR_SET_CHILD_SUBREAPER"),
        _pr("PR_SET_ENDIAN"),
        _pr("PR_SET_FPEMU"),
        _pr("PR_SET_FPEXC"),
        _pr("PR_SET_KEEPCAPS"),
        _pr("PR_SET_TIMING"),
    ):
        return (*head, ULONG)
    if option == _pr("PR_SET_DUMPABLE"):
        return (*head, Enum(_SUID_DUMP, "SUID_DUMP_???", 64))
    if option in (_pr("PR_CAPBSET_DROP"), _pr("PR_CAPBSET_READ")):
        return (*head, Enum(F.CAPABILITIES, "CAP_???", 64))
    if option == _pr("PR_SET_MM"):
        return (*head, Enum(F.PR_SET_MM, "PR_SET_MM_???"), HEX, HEX, HEX)
    if option == _pr("PR_SET_PTRACER"):
        return (*head, Fn(lambda ctx, v: "PR_SET_PTRACER_ANY" if s32(v) == -1 else str(s32(v))))
    if option == _pr("PR_SET_SECCOMP"):
        mode = Enum(F.SECCOMP_MODES, "SECCOMP_MODE_???", 64)
        if args[1] == dict(F.SECCOMP_MODES).get("SECCOMP_MODE_STRICT"):
            return (*head, mode)
        if args[1] == dict(F.SECCOMP_MODES).get("SECCOMP_MODE_FILTER"):
            return (*head, mode, PTR)
        return (*head, mode, HEX, HEX, HEX)
    if option == _pr("PR_SET_TAGGED_ADDR_CTRL"):
        return (*head, Fn(_tagged_addr_ctrl), *rest[1:])
    if option == _pr("PR_SET_TIMERSLACK"):
        return (*head, LONG)
    if option in (_pr("PR_SET_NO_NEW_PRIVS"), _pr("PR_SET_THP_DISABLE"), _pr("PR_SET_IO_FLUSHER")):
        return (*head, ULONG, HEX, HEX, HEX)
    if option == _pr("PR_SET_FP_MODE"):
        return (*head, Flags(F.PR_FP_MODE, "PR_FP_MODE_???"))
    if option == _pr("PR_SET_UNALIGN"):
        return (*head, Flags(F.PR_UNALIGN, "PR_UNALIGN_???"))
    if option == _pr("PR_MCE_KILL"):
        sub = Enum(F.PR_MCE_KILL, "PR_MCE_KILL_???", 64)
        if args[1] == dict(F.PR_MCE_KILL).get("PR_MCE_KILL_SET"):
            return (*head, sub, Enum(F.PR_MCE_KILL_POLICY, "PR_MCE_KILL_???", 64), HEX, HEX)
        return (*head, sub, HEX, HEX, HEX)
    if option == _pr("PR_MCE_KILL_GET"):
        return (*head, HEX, HEX, HEX, HEX)
    if option == _pr("PR_SET_SECUREBITS"):
        return (*head, Flags(F.SECBITS, "SECBIT_???", 64))
    if option == _pr("PR_GET_UNALIGN"):
        unalign = u32_in_brackets(lambda v: flag_set(v, F.PR_UNALIGN, dflt="PR_UNALIGN_???"), EXIT)
        return (*head, unalign)
    if option in (_pr("PR_SVE_SET_VL"), _pr("PR_SME_SET_VL")):
        table = F.PR_SVE_VL_FLAGS if option == _pr("PR_SVE_SET_VL") else F.PR_SME_VL_FLAGS
        return (*head, Fn(lambda ctx, v: _vl_value(v, table)))
    if option in (_pr("PR_SVE_GET_VL"), _pr("PR_SME_GET_VL")):
        return head
    if option == _pr("PR_SET_SYSCALL_USER_DISPATCH"):
        return (*head, Enum(F.PR_SUD_CMDS, "PR_SYS_DISPATCH_???", 64), HEX, HEX, PTR)
    if option == _pr("PR_SET_VMA"):
        vma = Enum(F.PR_SET_VMA, "PR_SET_VMA_???", 64)
        if args[1] == dict(F.PR_SET_VMA).get("PR_SET_VMA_ANON_NAME"):
            return (*head, vma, PTR, ULONG, STR)
        return (*head, vma, HEX, HEX, HEX)
    if option == _pr("PR_SCHED_CORE"):
        pidtypes = (
            ("PIDTYPE_PID", 0),
            ("PIDTYPE_TGID", 1),
            ("PIDTYPE_PGID", 2),
            ("PIDTYPE_SID", 3),
        )

        def pidtype(ctx: Context, v: int) -> Value:
            name = next((n for n, val in pidtypes if val == v & MASK32), "PIDTYPE_???")
            return f"{hex_c(v & MASK32)} /* {name} */"

        cmds = Enum(F.PR_SCHED_CORE_CMDS, "PR_SCHED_CORE_???")
        if args[1] & MASK32 == dict(F.PR_SCHED_CORE_CMDS).get("PR_SCHED_CORE_GET"):
            return (*head, cmds, INT, Fn(pidtype), IntP("X", EXIT))
        return (*head, cmds, INT, Fn(pidtype), PTR)
    if option == _pr("PR_PAC_RESET_KEYS"):
        keys = F.PR_PAC_ENABLED_KEYS + F.PR_PAC_KEYS
        return (*head, Flags(keys, "PR_PAC_???", 64), HEX, HEX, HEX)
    if option == _pr("PR_PAC_SET_ENABLED_KEYS"):
        keys = Flags(F.PR_PAC_ENABLED_KEYS, "PR_PAC_???", 64)
        return (*head, keys, keys, HEX, HEX)
    if option == _pr("PR_GET_SPECULATION_CTRL"):
        return (*head, Enum(F.PR_SPEC_CMDS, "PR_SPEC_???", 64))
    if option == _pr("PR_SET_SPECULATION_CTRL"):
        return (*head, Enum(F.PR_SPEC_CMDS, "PR_SPEC_???", 64), HEX)
    if option == _pr("PR_CAP_AMBIENT"):
        sub = Enum(F.PR_CAP_AMBIENT, "PR_CAP_AMBIENT_???", 64)
        amb = dict(F.PR_CAP_AMBIENT)
        if args[1] in (
            amb.get("PR_CAP_AMBIENT_RAISE"),
            amb.get("PR_CAP_AMBIENT_LOWER"),
            amb.get("PR_CAP_AMBIENT_IS_SET"),
        ):
            return (*head, sub, Enum(F.CAPABILITIES, "CAP_???", 64), HEX, HEX)
        return (*head, sub, HEX, HEX, HEX)
    return (*head, *rest)


def _vl_value(v: int, table: tuple[tuple[str, int], ...]) -> str:
    """strace's ``sprint_sve_val``: the vector length in hex, with its flags."""
    length = v & 0xFFFF
    flags = v & ~0xFFFF
    if not flags:
        return hex_c(length)
    return f"{flag_set(flags, table)}|{hex_c(length)}"


def prctl_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    option = ctx.args[0] & MASK32
    if ctx.failed:
        return None, None
    value = to_signed64(raw)
    if option == _pr("PR_GET_DUMPABLE"):
        return None, next((n for n, v in _SUID_DUMP if v == value), None)
    if option == _pr("PR_GET_FP_MODE") and value:
        return "x", flag_set(value, F.PR_FP_MODE)
    if option == _pr("PR_GET_SECUREBITS") and value:
        return "x", flag_set(value, F.SECBITS)
    if option == _pr("PR_MCE_KILL_GET"):
        return None, next((n for n, v in F.PR_MCE_KILL_POLICY if v == value), None)
    if option in (_pr("PR_SVE_GET_VL"), _pr("PR_SVE_SET_VL")) and value:
        return "x", _vl_value(value, F.PR_SVE_VL_FLAGS)
    if option in (_pr("PR_SME_GET_VL"), _pr("PR_SME_SET_VL")) and value:
        return "x", _vl_value(value, F.PR_SME_VL_FLAGS)
    if option == _pr("PR_GET_SPECULATION_CTRL"):
        spec = dict(F.PR_SPEC_CMDS)
        if ctx.args[1] in (
            spec.get(n)
            for n in ("PR_SPEC_STORE_BYPASS", "PR_SPEC_INDIRECT_BRANCH", "PR_SPEC_L1D_FLUSH")
        ):
            return "x", flag_set(value, F.PR_SPEC_GET)
    return None, None


# -- file handles -------------------------------------------------------------------------

#: ``MAX_HANDLE_SZ`` (fs.h, kernel-internal): the most of ``f_handle`` strace prints.
_MAX_HANDLE_SZ = 128
#: ``struct file_handle``'s header (``handle_bytes``, ``handle_type``) and most data.
_FILE_HANDLE_SIZE = 8 + _MAX_HANDLE_SZ
_EOVERFLOW = 75
#: name_to_handle_at(2)'s flags: strace's ``name_to_handle_at_flags``, two of AT_*.
NAME_TO_HANDLE_FLAGS = Flags(
    tuple((n, v) for n, v in F.AT_FLAGS if n in ("AT_SYMLINK_FOLLOW", "AT_EMPTY_PATH")),
    "AT_???",
)


def _file_handle_rest(ctx: Context, v: int, handle_bytes: int, handle_type: int) -> str:
    """``, handle_type=1, f_handle=0x...`` as strace's ``print_f_handle``: at most 128
    bytes in hex (``...`` after), ``???`` when unreadable."""
    from .quote import quote_hex

    size = min(handle_bytes, _MAX_HANDLE_SZ)
    data = read(ctx.memory, v + 8, size) if size else b""
    text = "???" if data is None else quote_hex(data, handle_bytes > size)
    return f", handle_type={handle_type}, f_handle={text}"


class FileHandleIn(Kind):
    """open_by_handle_at's ``struct file_handle``: ``{handle_bytes=2, handle_type=1,
    f_handle="\\x01\\x02"}``."""

    def decode(self, ctx: Context, v: int) -> Value:
        data = read(ctx.memory, v, 8)
        if data is None:
            return Unreadable(v) if v else "NULL"
        size, kind = struct.unpack("<Ii", data)
        return f"{{handle_bytes={size}{_file_handle_rest(ctx, v, size, kind)}}}"

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "bytes", _FILE_HANDLE_SIZE)


class FileHandleOut(Kind):
    """name_to_handle_at's ``struct file_handle``: ``{handle_bytes=0 => 8}`` (EOVERFLOW),
    else the whole handle once filled."""

    when = EXIT

    def save(self, ctx: Context, v: int) -> Any:
        return read_u32(ctx.memory, v)

    def decode(self, ctx: Context, v: int) -> Value:
        before = ctx.saved.get(ctx.index)
        if v == 0 or before is None:
            return addr(v)
        text = f"{{handle_bytes={before}"
        data = read(ctx.memory, v, 8)
        if data is not None and (not ctx.failed or ctx.ret == -_EOVERFLOW):
            size, kind = struct.unpack("<Ii", data)
            text += "" if size == before else f" => {size}"
            text += "" if ctx.failed else _file_handle_rest(ctx, v, size, kind)
        return text + "}"

    def footprint(self) -> Footprint:
        return Footprint("both", "bytes", _FILE_HANDLE_SIZE)


_ARCH = dict(F.ARCH_PRCTL_CODES)
#: XFEATURE_* component numbers (kernel-internal, arch/x86/include/asm/fpu/types.h; no
#: UAPI header), strace's ``x86_xfeature_bits``.
_XFEATURE_BITS = (
    ("XFEATURE_FP", 0),
    ("XFEATURE_SSE", 1),
    ("XFEATURE_YMM", 2),
    ("XFEATURE_BNDREGS", 3),
    ("XFEATURE_BNDCSR", 4),
    ("XFEATURE_OPMASK", 5),
    ("XFEATURE_ZMM_Hi256", 6),
    ("XFEATURE_Hi16_ZMM", 7),
    ("XFEATURE_PT_UNIMPLEMENTED_SO_FAR", 8),
    ("XFEATURE_PKRU", 9),
    ("XFEATURE_PASID", 10),
    ("XFEATURE_LBR", 15),
    ("XFEATURE_XTILE_CFG", 17),
    ("XFEATURE_XTILE_DATA", 18),
)
#: XFEATURE_MASK_* (same header), strace's ``x86_xfeatures`` order: unions first.
_XFEATURES = (
    ("XFEATURE_MASK_FPSSE", 0x3),
    ("XFEATURE_MASK_FP", 0x1),
    ("XFEATURE_MASK_SSE", 0x2),
    ("XFEATURE_MASK_YMM", 0x4),
    ("XFEATURE_MASK_BNDREGS", 0x8),
    ("XFEATURE_MASK_BNDCSR", 0x10),
    ("XFEATURE_MASK_AVX512", 0xE0),
    ("XFEATURE_MASK_OPMASK", 0x20),
    ("XFEATURE_MASK_ZMM_Hi256", 0x40),
    ("XFEATURE_MASK_Hi16_ZMM", 0x80),
    ("XFEATURE_MASK_PT", 0x100),
    ("XFEATURE_MASK_PKRU", 0x200),
    ("XFEATURE_MASK_PASID", 0x400),
    ("XFEATURE_MASK_LBR", 0x8000),
    ("XFEATURE_MASK_XTILE", 0x60000),
    ("XFEATURE_MASK_XTILE_CFG", 0x20000),
    ("XFEATURE_MASK_XTILE_DATA", 0x40000),
)


def _xfeature_mask(data: bytes, ctx: Context) -> Value:
    """``arch_prctl``'s XCOMP mask, verbose as strace prints it: ``[0x3 /*
    XFEATURE_MASK_FPSSE */]``."""
    (value,) = struct.unpack("<Q", data)
    if value == 0:
        return "[0]"
    names = flag_set(value, _XFEATURES)
    if names == hex(value):
        names = "XFEATURE_MASK_???"
    return f"[{value:#x} /* {names} */]"


def _xfeature(ctx: Context, v: int) -> Value:
    """``ARCH_REQ_XCOMP_PERM``'s component, verbose: ``0x11 /* XFEATURE_XTILE_CFG */``."""
    name = xval(v, _XFEATURE_BITS, "XFEATURE_???")
    return name if "/*" in name else f"{hex_c(v)} /* {name} */"


def arch_prctl_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    code = Enum(F.ARCH_PRCTL_CODES, "ARCH_???")
    option = args[0] & MASK32
    if option in (_ARCH["ARCH_GET_FS"], _ARCH["ARCH_GET_GS"]):
        return (code, KPTR_OUT)
    if option == _ARCH["ARCH_GET_CPUID"]:
        return (code,)
    xcomp = ("ARCH_GET_XCOMP_SUPP", "ARCH_GET_XCOMP_PERM", "ARCH_GET_XCOMP_GUEST_PERM")
    if option in (_ARCH[n] for n in xcomp):
        return (code, Struct(_xfeature_mask, 8, EXIT))
    if option in (_ARCH["ARCH_REQ_XCOMP_PERM"], _ARCH["ARCH_REQ_XCOMP_GUEST_PERM"]):
        return (code, Fn(_xfeature))
    return (code, HEX)


# -- sockets ------------------------------------------------------------------------------

_AF = dict(F.ADDRESS_FAMILIES)
_SOCK_TYPE_MASK = 0xF


def _socket_type(ctx: Context, v: int) -> Value:
    v &= MASK32
    name = next((n for n, val in F.SOCKET_TYPES if val == v & _SOCK_TYPE_MASK), None)
    if name is None:
        return flag_set(v, F.SOCKET_TYPE_FLAGS, dflt="SOCK_???")
    rest = v & ~_SOCK_TYPE_MASK
    return name if not rest else f"{name}|{flag_set(rest, F.SOCKET_TYPE_FLAGS, dflt='SOCK_???')}"


SOCK_TYPE = Fn(_socket_type)


def _socket_protocol(ctx: Context, v: int) -> Value:
    family = ctx.args[0] & MASK32
    if family in (_AF["AF_INET"], _AF["AF_INET6"]):
        return xval(v & MASK32, F.IP_PROTOCOLS, "IPPROTO_???")
    if family == _AF["AF_NETLINK"]:
        return xval(v & MASK32, F.NETLINK_PROTOCOLS, "NETLINK_???")
    if family == _AF["AF_PACKET"]:
        value = v & 0xFFFF
        return f"htons({hex_c(((value & 0xFF) << 8) | (value >> 8))})"
    return str(v)


class SockAddrIn(Kind):
    """A ``struct sockaddr *`` the call reads, its length in argument *length*."""

    def __init__(self, length: int):
        self.length = length

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        size = s32(ctx.args[self.length])
        if size < 2:
            return hex(v)
        data = read(ctx.memory, v, min(size, 128))
        return Unreadable(v) if data is None else S.sockaddr(data)

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "bytes", 1, count_arg=self.length)


class SockAddrOut(Kind):
    """``accept``/``getsockname``/``recvfrom``'s address and its in/out length: printed at
    exit, the length as ``[128 => 16]`` when the kernel changed it."""

    when = EXIT

    def __init__(self, len_arg: int, is_len: bool = False):
        self.len_arg = len_arg
        self.is_len = is_len

    def save(self, ctx: Context, v: int) -> Any:
        lp = ctx.args[self.len_arg]
        sa = ctx.args[self.len_arg - 1]
        if not sa or not lp:
            return None
        return read_s32(ctx.memory, lp)

    def decode(self, ctx: Context, v: int) -> Value:
        ulen = ctx.saved.get(ctx.index)
        lp = ctx.args[self.len_arg]
        sa = ctx.args[self.len_arg - 1]
        if ulen is None:
            return addr(v)
        rlen = None if ctx.failed else read_s32(ctx.memory, lp)
        if self.is_len:
            if rlen is None:
                return f"[{ulen}]"
            return f"[{ulen} => {rlen}]" if ulen != rlen else f"[{rlen}]"
        if rlen is None:
            return addr(sa)
        length = min(ulen, rlen, 128)
        if length < 2:
            return addr(sa)
        data = read(ctx.memory, sa, length)
        return Unreadable(sa) if data is None else S.sockaddr(data)

    def footprint(self) -> Footprint:
        if self.is_len:
            return Footprint("both", "bytes", 4)
        return Footprint(EXIT, "bytes", 128)


class InOutU64(Kind):
    """``sendfile``/``splice`` offset: ``[0]`` at entry, ``[0] => [5]`` once the call moved
    it."""

    def __init__(self, signed: bool = False):
        self.fmt = "<q" if signed else "<Q"

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        data = read(ctx.memory, v, 8)
        if data is None:
            return Unreadable(v)
        return f"[{struct.unpack(self.fmt, data)[0]}]"

    def footprint(self) -> Footprint:
        return Footprint("both", "bytes", 8)


class SendfileOffset(Kind):
    """sendfile's offset: ``[0]``, and ``[0] => [5]`` once the call moved it (printed at
    exit; read at entry too)."""

    when = EXIT

    def save(self, ctx: Context, v: int) -> Any:
        return read_u64(ctx.memory, v) if v else None

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        before = ctx.saved.get(ctx.index)
        if before is None:
            return addr(v)
        text = f"[{before}]"
        if not ctx.failed and ctx.ret:
            after = read_u64(ctx.memory, v)
            text += f" => [{after}]" if after is not None else f" => {hex(v)}"
        return text

    def footprint(self) -> Footprint:
        return Footprint("both", "bytes", 8)


# -- iovecs and messages ------------------------------------------------------------------


def iovecs(ctx: Context, v: int, count: int, data_size: int | None) -> Value:
    """strace's ``tprint_iov_upto``: ``[{iov_base="abc", iov_len=3}, ...]``, the bytes
    printed at most *data_size* in total (None: each iovec's length); the bases as
    addresses when *data_size* is -1."""
    remaining = [data_size]

    def one(data: bytes, ctx: Context) -> Value:
        base, length = struct.unpack("<QQ", data)
        if remaining[0] == -1:
            shown: Value = addr(base)
        else:
            n = length if remaining[0] is None else min(length, remaining[0])
            if remaining[0] is not None:
                remaining[0] -= n
            shown = buffer(ctx, base, n)
        return Seq(("{iov_base=", shown, f", iov_len={length}}}"))

    return array(ctx, v, count, 16, one)


class Iov(Kind):
    """An ``iovec`` array of argument *count* entries: the bytes the call wrote (*when*
    entry), the bytes it read (exit: up to the return value), or the bare addresses."""

    def __init__(self, count: int, when: str = ENTRY, bases: bool = True, bits: int = 64):
        self.count = count
        self.when = when
        self.bases = bases
        self.bits = bits

    def decode(self, ctx: Context, v: int) -> Value:
        count = ctx.args[self.count] & ((1 << self.bits) - 1)
        if not self.bases:
            return iovecs(ctx, v, count, -1)
        if self.when == EXIT:
            return iovecs(ctx, v, count, -1 if ctx.failed else max(ctx.ret or 0, 0))
        return iovecs(ctx, v, count, None)

    def footprint(self) -> Footprint:
        return Footprint(
            self.when,
            "array",
            16,
            count_arg=self.count,
            capped=True,
            follows="bytes" if self.bases else None,
        )


def msghdr(ctx: Context, v: int, data_size: int | None, user_namelen: int | None = None) -> Value:
    """``struct msghdr`` as strace's ``print_struct_msghdr``: its name (at most the length
    the caller gave, *user_namelen*, ``110 => 36`` when the kernel changed it), iovecs
    (their bytes at most *data_size* in total), control length and flags."""
    data = read(ctx.memory, v, SIZES["msghdr"])
    if data is None:
        return Unreadable(v)
    name, namelen, iov, iovlen, control, controllen, flags = struct.unpack("<QI4xQQQQi4x", data)
    namelen = namelen - (1 << 32) if namelen >> 31 else namelen
    shown_len = namelen
    if user_namelen is not None and namelen > user_namelen:
        shown_len = user_namelen
    if name and shown_len >= 2:
        raw_name = read(ctx.memory, name, min(shown_len, 128))
        name_text: Value = Unreadable(name) if raw_name is None else S.sockaddr(raw_name)
    else:
        name_text = addr(name)
    if user_namelen is not None and user_namelen != namelen:
        namelen_text = f"{user_namelen} => {namelen}"
    else:
        namelen_text = str(namelen)
    control_text = f", msg_control={msg_control(ctx, control, controllen)}" if controllen else ""
    return Seq(
        (
            "{msg_name=",
            name_text,
            f", msg_namelen={namelen_text}, msg_iov=",
            iovecs(ctx, iov, iovlen, data_size) if iov else "NULL",
            f", msg_iovlen={iovlen}{control_text}, msg_controllen={controllen}, "
            f"msg_flags={flag_set(flags & MASK32, F.MSG_FLAGS, dflt='MSG_???')}}}",
        )
    )


#: net.core.optmem_max of a default kernel: the most control data strace reads.
_OPTMEM_MAX = 20480
_SOL_SOCKET = dict(F.SOCKET_LEVELS).get("SOL_SOCKET", 1)
_SOL_IP = dict(F.SOCKET_LEVELS).get("SOL_IP", 0)


def _cmsg_data(ctx: Context, level: int, kind: int, data: bytes) -> str | None:
    """The ``cmsg_data`` strace decodes, or None."""
    scm = dict(F.SCM_TYPES)
    if level == _SOL_SOCKET:
        if kind == scm.get("SCM_RIGHTS") and len(data) >= 4:
            fds = [str(v) for (v,) in struct.iter_unpack("<i", data[: len(data) // 4 * 4])]
            limit = ctx.options.capture_bytes
            shown = fds[:limit] + (["..."] if len(fds) > limit else [])
            return "[" + ", ".join(shown) + "]"
        if kind == scm.get("SCM_CREDENTIALS") and len(data) >= 12:
            return S.ucred(data[:12])
        if kind in (scm.get("SO_TIMESTAMP_OLD"), scm.get("SO_TIMESTAMP_NEW")) and len(data) >= 16:
            return S.timeval(data[:16])
        if kind in (scm.get("SO_TIMESTAMPNS_OLD"), scm.get("SO_TIMESTAMPNS_NEW")):
            return S.timespec(data[:16]) if len(data) >= 16 else None
        stamping = (scm.get("SO_TIMESTAMPING_OLD"), scm.get("SO_TIMESTAMPING_NEW"))
        if kind in stamping and len(data) >= 48:
            return "[" + ", ".join(S.timespec(data[i : i + 16]) for i in range(0, 48, 16)) + "]"
        return None
    if level == _SOL_IP:
        ip = dict(F.IP_CMSG_TYPES)
        if kind == ip.get("IP_PKTINFO") and len(data) >= 12:
            import ipaddress

            (ifindex,) = struct.unpack_from("<i", data)
            spec = ipaddress.IPv4Address(data[4:8])
            address = ipaddress.IPv4Address(data[8:12])
            return (
                f'{{ipi_ifindex={ifindex}, ipi_spec_dst=inet_addr("{spec}"), '
                f'ipi_addr=inet_addr("{address}")}}'
            )
        if kind in (ip.get("IP_TTL"), ip.get("IP_MINTTL")) and len(data) >= 4:
            return f"[{struct.unpack_from('<i', data)[0]}]"
        if kind == ip.get("IP_TOS") and len(data) >= 1:
            return f"[{data[0]:#x}]"
    return None


def msg_control(ctx: Context, v: int, length: int) -> str:
    """strace's ``decode_msg_control``: the control messages, ``[{cmsg_len=20,
    cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[3]}]``."""
    control_len = min(length, _OPTMEM_MAX)
    data = read(ctx.memory, v, control_len) if control_len >= 16 else None
    if data is None:
        return addr(v)
    items = []
    offset = 0
    left = control_len
    while left >= 16:
        cmsg_len, level, kind = struct.unpack_from("<Qii", data, offset)
        size = min(cmsg_len, left)
        text = (
            f"{{cmsg_len={cmsg_len}, cmsg_level={xval(level & MASK32, F.SOCKET_LEVELS, 'SOL_???')}"
            ", cmsg_type="
        )
        if level == _SOL_SOCKET:
            text += xval(kind & MASK32, F.SCM_TYPES, "SCM_???")
        elif level == _SOL_IP:
            text += xval(kind & MASK32, F.IP_CMSG_TYPES, "IP_???")
        else:
            text += hex_c(kind & MASK32)
        body = data[offset + 16 : offset + size] if size > 16 else b""
        decoded = _cmsg_data(ctx, level, kind & MASK32, body)
        if decoded is not None:
            text += f", cmsg_data={decoded}"
        items.append(text + "}")
        if size < 16:
            left -= 16
            break
        step = (cmsg_len + 7) & ~7
        if step >= left:
            left = 0
            break
        offset += step
        left -= step
    if left:
        items.append(f"... /* {v + control_len - left:#x} */")
    elif control_len < length:
        items.append("...")
    return "[" + ", ".join(items) + "]"


class MsgHdr(Kind):
    """``struct msghdr *``: sendmsg's at entry, recvmsg's at exit (its iovecs up to the
    return value; ``{msg_namelen=N}`` when the call failed)."""

    def __init__(self, when: str = ENTRY):
        self.when = when

    def save(self, ctx: Context, v: int) -> Any:
        if not v:
            return None
        data = read(ctx.memory, v, 12)
        return None if data is None else s32(struct.unpack_from("<I", data, 8)[0])

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        if self.when == EXIT:
            namelen = ctx.saved.get(ctx.index)
            if namelen is None:
                return addr(v)
            if ctx.failed:
                return f"{{msg_namelen={namelen}}}"
            return msghdr(ctx, v, max(ctx.ret or 0, 0), namelen)
        return msghdr(ctx, v, None)

    def footprint(self) -> Footprint:
        when = "both" if self.when == EXIT else ENTRY
        return Footprint(when, "bytes", SIZES["msghdr"], follows="bytes")


# -- select and poll ----------------------------------------------------------------------


def _fdset_size(nfds: int) -> int:
    return (((nfds + 7) // 8) + 7) & -8


def _nfds(ctx: Context) -> int:
    nfds = s32(ctx.args[0])
    return min(max(nfds, 0), 1024 * 1024)


class FdSet(Kind):
    """An ``fd_set *`` of ``select``: ``[0 3]`` at entry."""

    def decode(self, ctx: Context, v: int) -> Value:
        nfds = _nfds(ctx)
        size = _fdset_size(nfds)
        if v == 0 or size == 0:
            return addr(v)
        data = read(ctx.memory, v, size)
        return Unreadable(v) if data is None else S.fd_set(data, nfds)

    def footprint(self) -> Footprint:
        # _fdset_size(nfds): nfds bits in 64-bit words
        return Footprint("both", "bytes", 8, count_arg=0, count_shift=6)


def select_return(timespec: bool):
    """``select``/``pselect6``'s decoration: ``in [3], left {tv_sec=0, tv_usec=5}``, or
    ``Timeout``."""

    def fn(ctx: Context, raw: int) -> tuple[str | None, str | None]:
        if ctx.failed:
            return None, None
        ready = to_signed64(raw)
        if ready == 0:
            return None, "Timeout"
        nfds = _nfds(ctx)
        size = _fdset_size(nfds)
        parts = []
        left = ready
        for name, index in (("in", 1), ("out", 2), ("except", 3)):
            if left <= 0:
                break
            p = ctx.args[index]
            data = read(ctx.memory, p, size) if p and size else None
            if data is None:
                continue
            bits = int.from_bytes(data, "little")
            fds = []
            for fd in range(nfds):
                if bits >> fd & 1:
                    fds.append(str(fd))
                    left -= 1
                    if left == 0:
                        break
            if fds:
                parts.append(f"{name} [{' '.join(fds)}]")
        tv = ctx.args[4]
        if tv:
            data = read(ctx.memory, tv, 16)
            text = hex(tv) if data is None else (S.timespec if timespec else S.timeval)(data)
            parts.append("left " + text)
        return None, ", ".join(parts)

    return fn


def pollfds(ctx: Context, v: int) -> Value:
    return array(ctx, v, ctx.args[1] & MASK32, 8, S.pollfd)


class PollFds(Kind):
    def decode(self, ctx: Context, v: int) -> Value:
        return pollfds(ctx, v)

    def footprint(self) -> Footprint:
        return Footprint("both", "array", 8, count_arg=1, capped=True)


def poll_return(with_timeout: bool):
    """``poll``/``ppoll``'s decoration: ``[{fd=0, revents=POLLIN}]`` (and ppoll's ``left
    {...}``), or ``Timeout``."""

    def fn(ctx: Context, raw: int) -> tuple[str | None, str | None]:
        if ctx.failed:
            return None, None
        if to_signed64(raw) == 0:
            return None, "Timeout"
        nfds = ctx.args[1] & MASK32
        start = ctx.args[0]
        if not start or not nfds:
            return None, None
        out = None
        data = read(ctx.memory, start, 8 * min(nfds, 1 << 16))
        if data is not None:
            out = S.pollfds_revents(data, ctx.options.capture_bytes)
        elif read(ctx.memory, start, 8) is None:
            out = f"[{start:#x}]"
        if with_timeout and ctx.args[2]:
            data = read(ctx.memory, ctx.args[2], 16)
            left = "left " + (hex(ctx.args[2]) if data is None else S.timespec(data))
            out = f"{out}, {left}" if out else left
        return None, out

    return fn


# -- getdents -----------------------------------------------------------------------------


class Dirents(Kind):
    """getdents/getdents64's buffer: ``0x7ffd... /* 4 entries */`` (strace without ``-v``)."""

    when = EXIT

    def __init__(self, header: int):
        self.header = header

    def decode(self, ctx: Context, v: int) -> Value:
        count = ctx.args[2] & MASK32
        ret = ctx.ret or 0
        if ctx.failed or ret > count or v == 0:
            return addr(v)
        data = read(ctx.memory, v, ret)
        if data is None:
            return Unreadable(v)
        entries = 0
        offset = 0
        left = ret
        while left >= self.header:
            entries += 1
            (reclen,) = struct.unpack_from("<H", data, offset + 16)
            if reclen > left:
                left = 0
                break
            if reclen < self.header:
                left -= self.header
                offset += self.header
                continue
            left -= reclen
            offset += reclen
        plus = "+" if left else ""
        return f"{hex(v)} /* {entries}{plus} entries */"

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "bytes", 1, count_ret=True)


# -- signals ------------------------------------------------------------------------------


def sigtimedwait_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    value = to_signed64(raw)
    if ctx.failed or value <= 0:
        return None, None
    return None, signal_name(value) if value <= 64 else None


# -- time ---------------------------------------------------------------------------------


def _strftime(sec: int) -> str | None:
    if sec == 0:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(sec))
    except (OverflowError, OSError, ValueError):
        return None


def _time_t(data: bytes, ctx: Context) -> Value:
    (value,) = struct.unpack("<q", data)
    when = _strftime(value)
    return f"[{value}{f' /* {when} */' if when else ''}]"


TIME_OUT = Struct(_time_t, 8, EXIT, ignore_error=False)


def time_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    if ctx.failed:
        return None, None
    return None, _strftime(to_signed64(raw))


class Utimes(Kind):
    """``utimes``/``futimesat``: two ``struct timeval`` with their dates."""

    def __init__(self, nsec: bool = False):
        self.nsec = nsec

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        data = read(ctx.memory, v, 32)
        if data is None:
            return Unreadable(v)
        items = []
        for i in range(2):
            sec, frac = struct.unpack_from("<qq", data, 16 * i)
            if self.nsec:
                special = {(1 << 30) - 1: "UTIME_NOW", (1 << 30) - 2: "UTIME_OMIT"}.get(frac)
                if special:
                    items.append(special)
                    continue
                text = f"{{tv_sec={sec}, tv_nsec={frac & ((1 << 64) - 1)}}}"
            else:
                text = f"{{tv_sec={sec}, tv_usec={frac & ((1 << 64) - 1)}}}"
            when = _strftime_frac(sec, frac, 9 if self.nsec else 6)
            items.append(text + (f" /* {when} */" if when else ""))
        return "[" + ", ".join(items) + "]"

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "bytes", 32)


def _strftime_frac(sec: int, frac: int, width: int) -> str | None:
    limit = 10**width - 1
    if (sec == 0 and frac == 0) or frac < 0 or frac > limit:
        return None
    try:
        head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    except (OverflowError, OSError, ValueError):
        return None
    part = f".{frac:0{width}d}" if frac else ""
    return f"{head}{part}+0000"


def _utimbuf(data: bytes, ctx: Context) -> Value:
    actime, modtime = struct.unpack("<qq", data)
    a = _strftime(actime)
    m = _strftime(modtime)
    return (
        f"{{actime={actime}{f' /* {a} */' if a else ''}, "
        f"modtime={modtime}{f' /* {m} */' if m else ''}}}"
    )


UTIMBUF = Struct(_utimbuf, 16)


def adjtimex_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    if ctx.failed:
        return None, None
    value = to_signed64(raw)
    return None, next((n for n, v in F.ADJTIME_STATES if v == value), None)


class SleepRemainder(Kind):
    """nanosleep/clock_nanosleep's remaining time: the struct when the sleep was interrupted
    (``ERESTART_RESTARTBLOCK``: a tracer that sees the kernel's restart codes), else the
    address; *flags_arg*: clock_nanosleep prints it only for a relative sleep."""

    when = EXIT

    def __init__(self, flags_arg: int | None = None):
        self.flags_arg = flags_arg

    def decode(self, ctx: Context, v: int) -> Value:
        interrupted = ctx.ret is not None and -516 <= ctx.ret <= -512
        if self.flags_arg is not None and ctx.args[self.flags_arg]:
            interrupted = False
        if not interrupted or v == 0:
            return addr(v)
        data = read(ctx.memory, v, 16)
        return Unreadable(v) if data is None else S.timespec(data)

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "bytes", 16)


# -- misc ---------------------------------------------------------------------------------


def _groups(ctx: Context, v: int, count: int) -> Value:
    if count > 65536 or count < 0:
        return addr(v)
    return array(ctx, v, count, 4, lambda d, c: _uid(struct.unpack("<I", d)[0]))


def _uid(value: int) -> str:
    return "-1" if value == 0xFFFFFFFF else str(value)


class Groups(Kind):
    def __init__(self, count: int = 0, when: str = ENTRY):
        self.count = count
        self.when = when

    def decode(self, ctx: Context, v: int) -> Value:
        if self.when == EXIT:
            if ctx.failed:
                return addr(v)
            return _groups(ctx, v, ctx.ret or 0)
        return _groups(ctx, v, s32(ctx.args[self.count]))

    def footprint(self) -> Footprint:
        if self.when == EXIT:
            return Footprint(EXIT, "array", 4, count_ret=True, capped=True)
        return Footprint(ENTRY, "array", 4, count_arg=self.count, capped=True)


def _uid_out(data: bytes, ctx: Context) -> Value:
    return f"[{_uid(struct.unpack('<I', data)[0])}]"


UID_OUT = Struct(_uid_out, 4, EXIT)


def getcwd_buf(ctx: Context, v: int) -> Value:
    if ctx.failed:
        return addr(v)
    n = max((ctx.ret or 0) - 1, 0)
    got = read_cstr(ctx.memory, v, min(n, 4095))
    if got is None:
        return Unreadable(v)
    return Quoted(got[0], cut=got[1], whole=True)


class CwdBuf(Kind):
    when = EXIT

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        return getcwd_buf(ctx, v)

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "string", 4096)


def _affinity(ctx: Context, v: int, length: int) -> Value:
    if v == 0 or (ctx.exiting and ctx.failed):
        return addr(v)
    if length == 0:
        return "[]"
    size = min(length, 128)
    data = read(ctx.memory, v, size)
    if data is None:
        return Unreadable(v)
    bits = int.from_bytes(data, "little")
    cpus = [str(i) for i in range(size * 8) if bits >> i & 1]
    if (size + 7) // 8 * 8 < length:
        cpus.append("...")
    return "[" + " ".join(cpus) + "]"


class CpuSet(Kind):
    def __init__(self, when: str = ENTRY):
        self.when = when

    def decode(self, ctx: Context, v: int) -> Value:
        length = ctx.args[1] & MASK32 if self.when == ENTRY else max(ctx.ret or 0, 0)
        return _affinity(ctx, v, length)

    def footprint(self) -> Footprint:
        if self.when == EXIT:
            return Footprint(EXIT, "bytes", 1, count_ret=True)
        return Footprint(ENTRY, "bytes", 1, count_arg=1)


def _sched_policy_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    if ctx.failed:
        return None, None
    value = to_signed64(raw)
    return None, next((n for n, v in F.SCHED_POLICIES if v == value), None)


sched_policy_return = _sched_policy_return


def personality_text(value: int) -> str:
    if value == 0xFFFFFFFF:
        return "0xffffffff"
    base = xval(value & 0xFF, F.PERSONALITY_TYPES, "PER_???")
    rest = value & ~0xFF
    if rest:
        base += "|" + flag_set(rest, F.PERSONALITY_FLAGS)
    return base


def personality_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    if ctx.failed:
        return None, None
    return "x", personality_text(raw & MASK32)


def ioprio_text(value: int) -> str:
    cls = xval(value >> 13, F.IOPRIO_CLASS, "IOPRIO_CLASS_???")
    return f"IOPRIO_PRIO_VALUE({cls}, {value & 0x1FFF})"


def ioprio_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    if ctx.failed:
        return None, None
    return None, ioprio_text(raw & MASK32)


def membarrier_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    if ctx.failed or ctx.args[0] & MASK32 or not raw:
        return None, None
    return "x", flag_set(raw, F.MEMBARRIER_CMDS)


def _memfd_flags(ctx: Context, v: int) -> Value:
    flags = v & MASK32
    if not flags:
        return "0"
    mask = 0x3F << 26
    huge = flags & mask
    flags &= ~mask
    parts = []
    if flags or not huge:
        parts.append(flag_set(flags, F.MFD_FLAGS, dflt="MFD_???"))
    if huge:
        parts.append(f"{huge >> 26}<<MFD_HUGE_SHIFT")
    return "|".join(parts)


MEMFD_FLAGS = Fn(_memfd_flags)


#: swapon(2) flags: glibc's two, then SWAP_FLAG_DISCARD_ONCE/_PAGES (kernel-internal,
#: include/linux/swap.h; no UAPI header), strace's ``swap_flags`` order.
_SWAP_FLAGS = (
    *F.SWAP_FLAGS,
    ("SWAP_FLAG_DISCARD_ONCE", 0x20000),
    ("SWAP_FLAG_DISCARD_PAGES", 0x40000),
)


def _swap_flags(ctx: Context, v: int) -> Value:
    """swapon's flags: ``SWAP_FLAG_PREFER|SWAP_FLAG_DISCARD|32767`` (the priority last)."""
    flags = v & MASK32
    prio = flags & 0x7FFF
    flags &= ~0x7FFF
    text = flag_set(flags, _SWAP_FLAGS, dflt="SWAP_FLAG_???") + "|" if flags else ""
    return f"{text}{prio}"


def _mount_flags(ctx: Context, v: int) -> Value:
    if v & 0xFFFF0000 == 0xC0ED0000:
        rest = v & ~0xFFFF0000
        return "MS_MGC_VAL" + ("|" + flag_set(rest, F.MOUNT_FLAGS, dflt="MS_???") if rest else "")
    return flag_set(v, F.MOUNT_FLAGS, dflt="MS_???")


def mount_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    flags = args[3]
    if flags & 0xFFFF0000 == 0xC0ED0000:
        flags &= ~0xFFFF0000
    md = dict(F.MOUNT_FLAGS)
    ignore_type = ignore_data = False
    if flags & md.get("MS_REMOUNT", 32):
        ignore_type = True
    elif flags & (
        md.get("MS_BIND", 4096)
        | md.get("MS_MOVE", 8192)
        | md.get("MS_SHARED", 1 << 20)
        | md.get("MS_PRIVATE", 1 << 18)
        | md.get("MS_SLAVE", 1 << 19)
        | md.get("MS_UNBINDABLE", 1 << 17)
    ):
        ignore_type = ignore_data = True
    return (
        PATH,
        PATH,
        PTR if ignore_type else STR,
        Fn(_mount_flags),
        PTR if ignore_data else STR,
    )


def _personality(ctx: Context, v: int) -> Value:
    return personality_text(v & MASK32)


def _ioprio_value(ctx: Context, v: int) -> Value:
    return ioprio_text(v & MASK32)


def syslog_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    # SYSLOG_ACTION_* (kernel-internal, include/linux/syslog.h; no UAPI header).
    names = (
        ("SYSLOG_ACTION_CLOSE", 0),
        ("SYSLOG_ACTION_OPEN", 1),
        ("SYSLOG_ACTION_READ", 2),
        ("SYSLOG_ACTION_READ_ALL", 3),
        ("SYSLOG_ACTION_READ_CLEAR", 4),
        ("SYSLOG_ACTION_CLEAR", 5),
        ("SYSLOG_ACTION_CONSOLE_OFF", 6),
        ("SYSLOG_ACTION_CONSOLE_ON", 7),
        ("SYSLOG_ACTION_CONSOLE_LEVEL", 8),
        ("SYSLOG_ACTION_SIZE_UNREAD", 9),
        ("SYSLOG_ACTION_SIZE_BUFFER", 10),
    )
    kind = s32(args[0])

    def action(ctx: Context, v: int) -> Value:
        name = next((n for n, val in names if val == kind), None)
        return f"{kind} /* {name} */" if name else f"{kind} /* SYSLOG_ACTION_??? */"

    head = (Fn(action),)
    if kind in (0, 1, 5, 6, 7, 9, 10):
        return head
    if kind in (2, 3, 4):
        return (*head, Buf(RET, EXIT), INT)
    if kind == 8:  # SYSLOG_ACTION_CONSOLE_LEVEL: LOGLEVEL_* (include/linux/kern_levels.h)
        levels = (
            ("LOGLEVEL_EMERG", 0),
            ("LOGLEVEL_ALERT", 1),
            ("LOGLEVEL_CRIT", 2),
            ("LOGLEVEL_ERR", 3),
            ("LOGLEVEL_WARNING", 4),
            ("LOGLEVEL_NOTICE", 5),
            ("LOGLEVEL_INFO", 6),
            ("LOGLEVEL_DEBUG", 7),
            ("LOGLEVEL_DEBUG+1", 8),
        )

        def level(ctx: Context, v: int) -> Value:
            value = s32(v)
            name = next((n for n, val in levels if val == value), "LOGLEVEL_???")
            return f"{value} /* {name} */"

        return (*head, PTR, Fn(level))
    return (*head, PTR, INT)


def reboot_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    head = (
        Enum(F.REBOOT_MAGIC1, "LINUX_REBOOT_MAGIC_???"),
        Enum(F.REBOOT_MAGIC2, "LINUX_REBOOT_MAGIC_???"),
        Enum(F.REBOOT_CMDS, "LINUX_REBOOT_CMD_???"),
    )
    if args[2] & MASK32 == dict(F.REBOOT_CMDS).get("LINUX_REBOOT_CMD_RESTART2"):
        return (*head, CStr(255))
    return head


def _sock_fprog(data: bytes, ctx: Context) -> Value:
    length, filt = struct.unpack("<H6xQ", data)
    return f"{{len={length}, filter={addr(filt)}}}"


def _notif_sizes(data: bytes, ctx: Context) -> Value:
    notif, resp, sdata = struct.unpack("<HHH", data)
    return f"{{seccomp_notif={notif}, seccomp_notif_resp={resp}, seccomp_data={sdata}}}"


def seccomp_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    op = args[0] & MASK32
    ops = dict(F.SECCOMP_OPS)
    head = (Enum(F.SECCOMP_OPS, "SECCOMP_SET_MODE_???"),)
    if op == ops.get("SECCOMP_SET_MODE_FILTER"):
        flags = Flags(F.SECCOMP_FILTER_FLAGS, "SECCOMP_FILTER_FLAG_???")
        return (*head, flags, struct_in(_sock_fprog, 16))
    if op == ops.get("SECCOMP_GET_NOTIF_SIZES"):
        return (*head, HEX32, Struct(_notif_sizes, 6, EXIT))
    if op == ops.get("SECCOMP_GET_ACTION_AVAIL"):
        action = u32_in_brackets(lambda v: xval(v, F.SECCOMP_RET_ACTIONS, "SECCOMP_RET_???"))
        return (*head, HEX32, action)
    return (*head, HEX32, PTR)


def _kcmp_epoll_slot(data: bytes, ctx: Context) -> Value:
    efd, tfd, toff = struct.unpack("<iiI", data)
    return f"{{efd={efd}, tfd={tfd}, toff={toff}}}"


def kcmp_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    kind = s32(args[2])
    types = dict(F.KCMP_TYPES)
    head = (PID, PID, Enum(F.KCMP_TYPES, "KCMP_???"))
    if kind == types.get("KCMP_FILE"):
        return (*head, INT, INT)
    if kind == types.get("KCMP_EPOLL_TFD"):
        return (*head, INT, struct_in(_kcmp_epoll_slot, 12))
    if kind in {types.get(n) for n in ("KCMP_FILES", "KCMP_FS", "KCMP_IO", "KCMP_SIGHAND")}:
        return head
    if kind in (types.get("KCMP_SYSVSEM"), types.get("KCMP_VM")):
        return head
    return (*head, HEX, HEX)


def membarrier_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    head = (Enum(F.MEMBARRIER_CMDS, "MEMBARRIER_CMD_???", fmt="x"),)
    flags = Flags(F.MEMBARRIER_FLAGS, "MEMBARRIER_CMD_FLAG_???")
    if args[1] & dict(F.MEMBARRIER_FLAGS).get("MEMBARRIER_CMD_FLAG_CPU", 1):
        return (*head, flags, INT)
    return (*head, flags)


def fsconfig_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    cmd = args[1] & MASK32
    c = dict(F.FSCONFIG_CMDS)
    keyed = {
        c.get(n)
        for n in (
            "FSCONFIG_SET_FLAG",
            "FSCONFIG_SET_STRING",
            "FSCONFIG_SET_BINARY",
            "FSCONFIG_SET_PATH",
            "FSCONFIG_SET_PATH_EMPTY",
            "FSCONFIG_SET_FD",
        )
    }
    key: Kind = CStr(256) if cmd in keyed else PTR
    if cmd == c.get("FSCONFIG_SET_STRING"):
        value: Kind = CStr(256)
    elif cmd in (c.get("FSCONFIG_SET_PATH"), c.get("FSCONFIG_SET_PATH_EMPTY")):
        value = PATH
    elif cmd == c.get("FSCONFIG_SET_BINARY") and 0 <= s32(args[4]) <= 1 << 20:
        value = Buf(4, hexed=True, size_bits=32)
    else:
        value = PTR
    if cmd in (c.get("FSCONFIG_SET_PATH"), c.get("FSCONFIG_SET_PATH_EMPTY")):
        aux: Kind = DIRFD
    else:
        aux = INT
    return (FD, Enum(F.FSCONFIG_CMDS, "FSCONFIG_???"), key, value, aux)


def ipc_ctl(table: tuple[tuple[str, int], ...], dflt: str) -> Fn:
    def fn(ctx: Context, v: int) -> Value:
        cmd = v & MASK32
        prefix = "IPC_64|" if cmd & 0x100 else ""
        return prefix + xval(cmd & ~0x100, table, dflt)

    return Fn(fn)


def _ipc_key(ctx: Context, v: int) -> Value:
    key = v & MASK32
    return "IPC_PRIVATE" if key == 0 else hex(key)


IPC_KEY = Fn(_ipc_key)
IPC_MODE = Fn(_ipc_mode)


def _msgbuf(ctx: Context, v: int) -> Value:
    if v == 0:
        return "NULL"
    mtype = read_u64(ctx.memory, v)
    if mtype is None:
        return Unreadable(v)
    size = ctx.args[2]
    text = buffer(ctx, v + 8, size)
    return Seq((f"{{mtype={to_signed64(mtype)}, mtext=", text, "}"))


class MsgBuf(Kind):
    def __init__(self, when: str = ENTRY):
        self.when = when

    def decode(self, ctx: Context, v: int) -> Value:
        if self.when == EXIT and ctx.failed:
            return addr(v)
        return _msgbuf(ctx, v)

    def footprint(self) -> Footprint:
        return Footprint(self.when, "bytes", 1, count_arg=2, capped=True)


def _getrandom_flags(ctx: Context, v: int) -> Value:
    return flag_set(v & MASK32, F.GETRANDOM_FLAGS, dflt="GRND_???")


def _fan_events() -> tuple[tuple[str, int], ...]:
    """fanotify_mark(2) events in strace's ``fan_event_flags`` order: the UAPI ones with
    FAN_DIR_MODIFY (0x80000, gone from the UAPI header since Linux 5.9) after
    FAN_OPEN_EXEC_PERM."""
    events = list(F.FAN_EVENTS)
    at = [name for name, _ in events].index("FAN_OPEN_EXEC_PERM") + 1
    events.insert(at, ("FAN_DIR_MODIFY", 0x80000))
    return tuple(events)


#: fanotify_mark(2)'s mask: :func:`_fan_events`.
FAN_EVENTS = _fan_events()


def _fanotify_init_flags(ctx: Context, v: int) -> Value:
    flags = v & MASK32
    cls = xval(flags & 0xC, F.FAN_CLASSES, "FAN_CLASS_???")
    rest = flags & ~0xC
    return cls if not rest else f"{cls}|{flag_set(rest, F.FAN_INIT_FLAGS, dflt='FAN_???')}"


def _fanotify_dirfd(ctx: Context, v: int) -> Value:
    fd = s32(v)
    if fd == -100:
        return "AT_FDCWD"
    return "FAN_NOFD" if fd == -1 else str(fd)


def _statx_flags(ctx: Context, v: int) -> Value:
    flags = v & MASK32
    sync = flags & 0x6000
    text = flag_set(sync, F.AT_STATX_SYNC)
    rest = flags & ~0x6000
    if rest:
        text += "|" + flag_set(rest, F.AT_FLAGS)
    return text


def _kexec_flags(ctx: Context, v: int) -> Value:
    arch = v & 0xFFFF0000
    text = xval(arch, F.KEXEC_ARCH, "KEXEC_ARCH_???")
    rest = v & ~0xFFFF0000
    if rest:
        text += "|" + flag_set(rest, F.KEXEC_LOAD_FLAGS, dflt="KEXEC_???")
    return text


def _unshare_flags(ctx: Context, v: int) -> Value:
    return flag_set(v, F.UNSHARE_FLAGS, dflt="CLONE_???")


#: ptrace requests as strace names them: its PTRACE_PEEKUSER/POKEUSER are the UAPI's
#: PTRACE_PEEKUSR/POKEUSR (3 and 6).
_PTRACE_NAMES = (("PTRACE_PEEKUSER", 3), ("PTRACE_POKEUSER", 6), *F.PTRACE_REQUESTS)


def ptrace_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    req = args[0]
    p = dict(F.PTRACE_REQUESTS)
    request = Enum(_PTRACE_NAMES, "PTRACE_???", 64)
    if req == p.get("PTRACE_TRACEME"):
        return (request,)
    head = (request, PID)
    if req in (p.get(n) for n in ("PTRACE_ATTACH", "PTRACE_INTERRUPT", "PTRACE_KILL")):
        return head
    if req == p.get("PTRACE_LISTEN"):
        return head
    if req in (p.get("PTRACE_PEEKDATA"), p.get("PTRACE_PEEKTEXT"), 3):  # 3: PTRACE_PEEKUSER
        return (*head, PTR, KPTR_OUT)
    if req in (p.get("PTRACE_GETREGSET"), p.get("PTRACE_SETREGSET")):
        return (*head, HEX, PTR)
    if req in (
        p.get("PTRACE_GETSIGMASK"),
        p.get("PTRACE_SECCOMP_GET_FILTER"),
        p.get("PTRACE_SECCOMP_GET_METADATA"),
        p.get("PTRACE_GET_SYSCALL_INFO"),
    ):
        return (*head, ULONG, Exit(PTR))
    if req == p.get("PTRACE_SETSIGMASK"):
        return (*head, ULONG, SigSet(2))
    if req in (p.get("PTRACE_GETREGS"), p.get("PTRACE_GETFPREGS")):
        return (*head, PTR, Exit(PTR))
    if req in (p.get("PTRACE_SETREGS"), p.get("PTRACE_SETFPREGS")):
        return (*head, PTR, PTR)
    resume = ("PTRACE_CONT", "PTRACE_DETACH", "PTRACE_SYSCALL", "PTRACE_SINGLESTEP")
    resume += ("PTRACE_SINGLEBLOCK", "PTRACE_SYSEMU", "PTRACE_SYSEMU_SINGLESTEP")
    if req in (p.get(n) for n in resume):
        return (*head, PTR, Fn(lambda ctx, v: _signal64(v)))
    if req in (p.get("PTRACE_SETOPTIONS"), p.get("PTRACE_SEIZE"), p.get("PTRACE_OLDSETOPTIONS")):
        return (*head, PTR, Flags(F.PTRACE_OPTIONS, "PTRACE_O_???", 64))
    if req == p.get("PTRACE_GETEVENTMSG"):
        return (*head, PTR, IntP("U", EXIT))
    if req == p.get("PTRACE_GETSIGINFO"):
        return (*head, PTR, SIGINFO_OUT)
    if req == p.get("PTRACE_SETSIGINFO"):
        return (*head, PTR, SIGINFO)
    if req == p.get("PTRACE_PEEKSIGINFO"):
        return (*head, PTR, Exit(PTR))
    return (*head, PTR, PTR)


def keyctl_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    cmd = args[0] & MASK32
    k = dict(F.KEYCTL_CMDS)
    key = Enum(F.KEY_SPECS, None, fmt="d")
    head = (Enum(F.KEYCTL_CMDS, "KEYCTL_???"),)
    if cmd == k.get("KEYCTL_GET_KEYRING_ID"):
        return (*head, key, INT)
    if cmd == k.get("KEYCTL_JOIN_SESSION_KEYRING"):
        return (*head, STR)
    if cmd in (k.get("KEYCTL_UPDATE"),):
        return (*head, key, Buf(3), ULONG)
    if cmd in (k.get("KEYCTL_REVOKE"), k.get("KEYCTL_CLEAR"), k.get("KEYCTL_INVALIDATE")):
        return (*head, key)
    if cmd in (k.get("KEYCTL_CHOWN"),):
        return (*head, key, UID, UID)
    if cmd in (k.get("KEYCTL_SETPERM"),):
        return (*head, key, HEX32)
    if cmd in (k.get("KEYCTL_DESCRIBE"), k.get("KEYCTL_READ"), k.get("KEYCTL_GET_SECURITY")):
        return (*head, key, Buf(RET, EXIT), ULONG)
    if cmd in (k.get("KEYCTL_LINK"), k.get("KEYCTL_UNLINK")):
        return (*head, key, key)
    if cmd == k.get("KEYCTL_SEARCH"):
        return (*head, key, STR, STR, key)
    if cmd == k.get("KEYCTL_SET_REQKEY_KEYRING"):
        return (*head, Enum(F.KEY_REQKEYS, "KEY_REQKEY_DEFL_???", fmt="d"))
    if cmd == k.get("KEYCTL_SET_TIMEOUT"):
        return (*head, key, UINT)
    if cmd == k.get("KEYCTL_ASSUME_AUTHORITY"):
        return (*head, key)
    if cmd == k.get("KEYCTL_SESSION_TO_PARENT"):
        return head
    return (*head, HEX, HEX, HEX, HEX)


def _key_serial(ctx: Context, v: int) -> Value:
    return xval(s32(v), F.KEY_SPECS, None, "d")


def bpf_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    return (Enum(F.BPF_CMDS, "BPF_???"), PTR, UINT)


def _if_dqblk(data: bytes, ctx: Context) -> Value:
    """``struct if_dqblk`` as strace prints it without ``-v``: the limits and usage, then
    ``...``."""
    names = ("bhardlimit", "bsoftlimit", "curspace", "ihardlimit", "isoftlimit", "curinodes")
    values = struct.unpack("<6Q", data[:48])
    return "{" + ", ".join(f"dqb_{n}={v}" for n, v in zip(names, values, strict=True)) + ", ...}"


def _if_dqinfo(data: bytes, ctx: Context) -> Value:
    """``struct if_dqinfo``: ``{dqi_bgrace=1, dqi_igrace=2, dqi_flags=DQF_SYS_FILE,
    dqi_valid=IIF_FLAGS}``."""
    bgrace, igrace, flags, valid = struct.unpack("<QQII", data[:24])
    return (
        f"{{dqi_bgrace={bgrace}, dqi_igrace={igrace}, "
        f"dqi_flags={flag_set(flags, F.DQINFO_FLAGS, dflt='DQF_???')}, "
        f"dqi_valid={flag_set(valid, F.DQINFO_VALID, dflt='IIF_???')}}}"
    )


def _fs_disk_quota(data: bytes, ctx: Context) -> Value:
    """XFS's ``struct fs_disk_quota`` as strace prints it without ``-v``: ``{d_version=1,
    d_flags=FS_USER_QUOTA, d_fieldmask=0x3, d_id=0, d_blk_hardlimit=..., ...}``."""
    version, flags, mask, qid = struct.unpack("<bBHI", data[:8])
    names = ("blk_hardlimit", "blk_softlimit", "ino_hardlimit", "ino_softlimit")
    values = struct.unpack("<6Q", data[8:56])
    pairs = zip((*names, "bcount", "icount"), values, strict=True)
    limits = ", ".join(f"d_{n}={v}" for n, v in pairs)
    return (
        f"{{d_version={version}, "
        f"d_flags={flag_set(flags, F.XFS_DQBLK_FLAGS, dflt='FS_???_QUOTA')}, "
        f"d_fieldmask={hex_c(mask)}, d_id={qid}, {limits}, ...}}"
    )


#: quotactl's ``struct if_dqblk`` (72 bytes) and ``struct if_dqinfo`` (24 bytes).
_DQBLK, _DQBLK_OUT = Struct(_if_dqblk, 72), Struct(_if_dqblk, 72, EXIT)
_DQINFO, _DQINFO_OUT = Struct(_if_dqinfo, 24), Struct(_if_dqinfo, 24, EXIT)
#: XFS's ``struct fs_disk_quota`` (112 bytes).
_XDQBLK, _XDQBLK_OUT = Struct(_fs_disk_quota, 112), Struct(_fs_disk_quota, 112, EXIT)


def _quota_data(qcmd: int) -> tuple[Kind, ...]:
    """What follows quotactl's command and target, by command (strace's
    ``decode_cmd_data``): the id and the data, as their command uses them."""
    cmd = (qcmd & MASK32) >> 8
    q = dict(F.QUOTA_CMDS)
    if cmd in (q.get("Q_QUOTAOFF"), q.get("Q_SYNC"), q.get("Q_XQUOTASYNC")):
        return ()
    if cmd == q.get("Q_QUOTAON"):
        return (Enum(F.QUOTA_FORMATS, "QFMT_VFS_???"), PATH)
    if cmd == q.get("Q_GETQUOTA"):
        return (UID, _DQBLK_OUT)
    if cmd == q.get("Q_SETQUOTA"):
        return (UID, _DQBLK)
    if cmd == q.get("Q_GETINFO"):
        return (At(3, _DQINFO_OUT),)
    if cmd == q.get("Q_SETINFO"):
        return (At(3, _DQINFO),)
    if cmd == q.get("Q_GETNEXTQUOTA"):
        return (UID, Exit(PTR))
    if cmd in (q.get("Q_XGETQUOTA"), q.get("Q_XGETNEXTQUOTA")):
        return (UID, _XDQBLK_OUT)
    if cmd == q.get("Q_XSETQLIM"):
        return (UID, _XDQBLK)
    if cmd == q.get("Q_GETFMT"):
        fmt = u32_in_brackets(lambda v: xval(v, F.QUOTA_FORMATS, "QFMT_VFS_???"), EXIT)
        return (At(3, fmt),)
    if cmd in (q.get("Q_XGETQSTAT"), q.get("Q_XGETQSTATV")):
        return (At(3, Exit(PTR)),)
    if cmd in (q.get("Q_XQUOTAON"), q.get("Q_XQUOTAOFF")):
        flags = u32_in_brackets(lambda v: flag_set(v, F.XFS_QUOTA_FLAGS, dflt="FS_QUOTA_???"))
        return (At(3, flags),)
    if cmd == q.get("Q_XQUOTARM"):
        kinds = u32_in_brackets(lambda v: flag_set(v, F.XFS_DQBLK_FLAGS, dflt="FS_???_QUOTA"))
        return (At(3, kinds),)
    return (UID, PTR)


def quotactl_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    return (Fn(_quota_cmd), PATH, *_quota_data(args[0]))


def quotactl_fd_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    return (UINT_FD, At(1, Fn(_quota_cmd)), *_quota_data(args[1]))


def _quota_cmd(ctx: Context, v: int) -> Value:
    cmd = v & MASK32
    qtype = cmd & 0xFF
    sub = cmd >> 8
    return f"QCMD({xval(sub, F.QUOTA_CMDS, 'Q_???')}, {xval(qtype, F.QUOTA_TYPES, '???QUOTA')})"


def semctl_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    return (INT, INT, ipc_ctl(F.SEMCTL_CMDS, "SEM_???"), Fn(_semctl_arg))


def _semctl_arg(ctx: Context, v: int) -> Value:
    cmd = ctx.args[2] & MASK32 & ~0x100
    cmds = dict(F.SEMCTL_CMDS)
    if cmd in (cmds.get("SETVAL"),):
        return hex_c(v)
    return f"[{addr(v)}]"


#: pkey_alloc(2) access rights: the UAPI two, then PKEY_DISABLE_EXECUTE (powerpc's
#: asm/mman.h only; strace's ``pkey_access`` names it on every architecture).
_PKEY_ACCESS = (*F.PKEY_ACCESS, ("PKEY_DISABLE_EXECUTE", 0x4))


def pkey_alloc_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    """pkey_alloc's flags (hex) and access rights."""
    return (HEX, Flags(_PKEY_ACCESS, "PKEY_???", 64))


def get_mempolicy_mode(data: bytes, ctx: Context) -> Value:
    (mode,) = struct.unpack("<i", data)
    return f"[{xval(mode & MASK32, F.MPOL_MODES, 'MPOL_???')}]"


def _mpol_mode(ctx: Context, v: int) -> Value:
    flag_mask = 0
    for name in ("MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES", "MPOL_F_NUMA_BALANCING"):
        flag_mask |= dict(F.MPOL_MODE_FLAGS).get(name, 0)
    mode = v & ~flag_mask
    flags = v & flag_mask
    if not flags:
        return xval(mode, F.MPOL_MODES, "MPOL_???")
    name = next((n for n, val in F.MPOL_MODES if val == mode), None)
    if name is None:
        return flag_set(v, F.MPOL_MODE_FLAGS, dflt="MPOL_???")
    return f"{name}|{flag_set(flags, F.MPOL_MODE_FLAGS)}"


MPOL_MODE = Fn(_mpol_mode)
MPOL_MODE32 = Fn(lambda ctx, v: _mpol_mode(ctx, v & MASK32))


def _node_word(word: int) -> str:
    """C's ``%#016llx``: ``0x00000000000001``, but ``0000000000000000`` for zero."""
    return f"{word:#016x}" if word else "0" * 16


class NodeMask(Kind):
    """A node mask of argument *maxnode* bits: ``[0x1]`` (an array of longs, in hex)."""

    def __init__(self, maxnode: int, when: str = ENTRY):
        self.maxnode = maxnode
        self.when = when

    def decode(self, ctx: Context, v: int) -> Value:
        maxnode = ctx.args[self.maxnode]
        nlongs = (maxnode + 62) // 64
        if maxnode and not nlongs:
            return addr(v)
        if self.when == EXIT and ctx.failed:
            return addr(v)
        return array(ctx, v, nlongs, 8, lambda d, c: _node_word(struct.unpack("<Q", d)[0]))

    def footprint(self) -> Footprint:
        return Footprint(self.when, "array", 8, count_arg=self.maxnode, capped=True)


_SCHED_FLAG_KEEP_POLICY, _SCHED_FLAG_KEEP_PARAMS = 0x08, 0x10
_SCHED_ATTR_MIN, _SCHED_ATTR_VER1 = 48, 56


def sched_attr(data: bytes, size: int, usize: int, is_set: bool) -> str:
    """strace's ``print_sched_attr`` of the *data* read (*size* bytes, at most 56): the
    fields its ``size`` covers, the policy and parameters unless ``sched_setattr`` keeps
    them; ``...`` when the caller's size (*usize*) is bigger than what was read."""
    (size_field,) = struct.unpack_from("<I", data.ljust(4, b"\0"))
    if not is_set:
        size = size_field
    parts = [f"size={size_field}"]
    if size >= _SCHED_ATTR_MIN and len(data) >= _SCHED_ATTR_MIN:
        policy, flags, nice, prio, runtime, deadline, period = struct.unpack_from(
            "<IQiIQQQ", data, 4
        )
        keep = flags & (_SCHED_FLAG_KEEP_POLICY | _SCHED_FLAG_KEEP_PARAMS)
        if not is_set or policy >> 31 or not keep:
            parts.append(f"sched_policy={xval(policy, F.SCHED_POLICIES, 'SCHED_???')}")
        parts.append(f"sched_flags={flag_set(flags, F.SCHED_FLAGS, dflt='SCHED_FLAG_???')}")
        if not is_set or not flags & _SCHED_FLAG_KEEP_PARAMS:
            parts += [
                f"sched_nice={nice}",
                f"sched_priority={prio}",
                f"sched_runtime={runtime}",
                f"sched_deadline={deadline}",
                f"sched_period={period}",
            ]
        if size >= _SCHED_ATTR_VER1 and len(data) >= _SCHED_ATTR_VER1:
            umin, umax = struct.unpack_from("<II", data, 48)
            parts += [f"sched_util_min={umin}", f"sched_util_max={umax}"]
    if (usize if is_set else size_field) > size:
        parts.append("...")
    return "{" + ", ".join(parts) + "}"


#: A ``struct user_desc *`` (modify_ldt, set_thread_area).
USER_DESC = Struct(S.user_desc, SIZES["user_desc"])


def _entry_number(value: int) -> str:
    """``user_desc.entry_number`` as strace's ``PRINT_VAL_ID``: ``-1`` or unsigned."""
    return "-1" if value == MASK32 else str(value)


class ThreadAreaOut(Kind):
    """get_thread_area's ``user_desc``: ``{entry_number=12`` read at entry, then ``, ...}``
    after a failure, else the rest of the struct read at exit (``entry_number=12 => 6``
    if the kernel changed it)."""

    when = EXIT

    def save(self, ctx: Context, v: int) -> Any:
        return read_u32(ctx.memory, v)

    def decode(self, ctx: Context, v: int) -> Value:
        before = ctx.saved.get(ctx.index)
        if v == 0 or before is None:
            return addr(v)
        head = "{entry_number=" + _entry_number(before)
        data = None if ctx.failed else read(ctx.memory, v, SIZES["user_desc"])
        if data is None:
            return head + ", ...}"
        (after,) = struct.unpack("<I", data[:4])
        changed = "" if after == before else " => " + _entry_number(after)
        return head + changed + ", " + S.user_desc(data).split(", ", 1)[1]

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "bytes", 4)


def set_thread_area_return(ctx: Context, raw: int) -> tuple[str | None, str | None]:
    """set_thread_area's decoration: the entry the kernel chose, ``entry_number=12``."""
    data = None if ctx.failed else read(ctx.memory, ctx.args[0], 4)
    return None, None if data is None else f"entry_number={struct.unpack('<I', data)[0]}"


#: What get_thread_area and set_thread_area read at exit: the whole ``user_desc``.
USER_DESC_READS = ((0, Footprint(EXIT, "bytes", SIZES["user_desc"])),)


def ldt_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    """modify_ldt: its ``user_desc`` decoded only when the size is the struct's."""
    return (INT, USER_DESC if args[2] == SIZES["user_desc"] else PTR, ULONG)


def io_setup_ctx(data: bytes, ctx: Context) -> Value:
    return f"[{hex_c(struct.unpack('<Q', data)[0])}]"


def io_event(data: bytes, ctx: Context) -> Value:
    d, obj, res, res2 = struct.unpack("<QQqq", data)
    return f"{{data={hex_c(d)}, obj={hex_c(obj)}, res={res}, res2={res2}}}"


robust_list = _kptr


def epoll_wait_events(ctx: Context, v: int) -> Value:
    if ctx.failed:
        return addr(v)
    return array(ctx, v, max(ctx.ret or 0, 0), 12, S.epoll_event)


class EpollEvents(Kind):
    when = EXIT

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        return epoll_wait_events(ctx, v)

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "array", 12, count_ret=True, capped=True)


def epoll_ctl_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    op = args[1] & MASK32
    event: Kind = (
        PTR if op == dict(F.EPOLL_OPS)["EPOLL_CTL_DEL"] else struct_in(S.epoll_event, "epoll_event")
    )
    return (FD, Enum(F.EPOLL_OPS, "EPOLL_CTL_???"), FD, event)


def _mq_attr_raw_flags(data: bytes, ctx: Context) -> Value:
    return S.mq_attr(data, ctx, decode_flags=False)


def mq_open_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    if args[1] & value_of(F.OPEN_FLAGS, "O_CREAT"):
        return (PATH, OpenFlags(), MODE, struct_in(_mq_attr_raw_flags, "mq_attr"))
    return (PATH, OpenFlags())


def sethostname_layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
    if args[1] & MASK32 > 64:
        return (PTR, UINT)
    return (Buf(1, size_bits=32), UINT)


class XattrValue(Kind):
    """An extended attribute value: the bytes the call reads (argument 3 long), or at exit
    the bytes it wrote (the return value); a trailing NUL is not printed."""

    def __init__(self, when: str = ENTRY):
        self.when = when

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        if self.when == EXIT:
            if ctx.failed:
                return addr(v)
            size = max(ctx.ret or 0, 0)
        else:
            size = ctx.args[3]
        if size > 65536:
            return addr(v)
        value = buffer(ctx, v, size)
        if isinstance(value, Quoted) and size and len(value.data) == size:
            if value.data.endswith(b"\0"):
                return Quoted(value.data[:-1], size=size - 1)
        return value

    def footprint(self) -> Footprint:
        if self.when == EXIT:
            return Footprint(EXIT, "bytes", 1, count_ret=True, capped=True)
        return Footprint(ENTRY, "bytes", 1, count_arg=3, capped=True)


class XattrList(Kind):
    when = EXIT

    def decode(self, ctx: Context, v: int) -> Value:
        if not ctx.args[2] or ctx.failed:
            return addr(v)
        return buffer(ctx, v, max(ctx.ret or 0, 0))

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "bytes", 1, count_ret=True, capped=True)


def mknod_layout(index: int):
    def layout(args: tuple[int, ...]) -> tuple[Kind, ...]:
        mode = args[index + 1] & 0xFFFF
        head: tuple[Kind, ...] = (DIRFD,) if index else ()
        mode_kind = Fn(_symbolic_mode)
        if mode & 0o170000 in (0o020000, 0o060000):
            dev_kind = Fn(lambda ctx, v: S.dev(v & MASK32))
            return (*head, PATH, mode_kind, dev_kind)
        return (*head, PATH, mode_kind)

    return layout


def _ustat_dev(ctx: Context, v: int) -> Value:
    return S.dev(v & MASK32)


def _fd_pair_out(data: bytes, ctx: Context) -> Value:
    a, b = struct.unpack("<ii", data)
    return f"[{a}, {b}]"


FD_PAIR_OUT = Struct(_fd_pair_out, 8, EXIT)


# -- pieces of the table needing strace's logic (continued) -------------------------------


def _ipc_shm_mode(v: int) -> str:
    flags = v & ~0o777 & MASK32
    huge = flags & (0x3F << 26)
    flags &= ~(0x3F << 26)
    parts = []
    if flags or not huge:
        text = flag_set(flags, F.SHM_RESOURCE_FLAGS) if flags else ""
        if text:
            parts.append(text)
    if huge:
        parts.append(f"{huge >> 26}<<SHM_HUGE_SHIFT")
    return "|".join([*parts, _octal(v & 0o777)])


_LEVELS = dict(F.SOCKET_LEVELS)


def _sock_level(ctx: Context, v: int) -> Value:
    return xval(v & MASK32, F.SOCKET_LEVELS, "SOL_??")


def _sock_option(ctx: Context, v: int) -> Value:
    level = ctx.args[1] & MASK32
    name = v & MASK32
    if level == _LEVELS.get("SOL_SOCKET"):
        return xval(name, F.SOCKET_OPTIONS, "SO_???")
    if level == _LEVELS.get("SOL_IP"):
        return xval(name, F.IP_OPTIONS, "IP_???")
    if level == _LEVELS.get("SOL_IPV6"):
        return xval(name, F.IPV6_OPTIONS, "IPV6_???")
    if level == _LEVELS.get("SOL_TCP"):
        return xval(name, F.TCP_OPTIONS, "TCP_???")
    if level == _LEVELS.get("SOL_PACKET"):
        return xval(name, F.PACKET_OPTIONS, "PACKET_???")
    if level == _LEVELS.get("SOL_NETLINK"):
        return xval(name, F.NETLINK_OPTIONS, "NETLINK_???")
    if level == _LEVELS.get("SOL_UDP"):
        return xval(name, F.UDP_OPTIONS, "UDP_???")
    return str(name)


#: SOL_SOCKET options whose value strace prints as an ``int`` (its print_*sockopt lists).
_SO_INT_OPTIONS = frozenset(
    value
    for name, value in F.SOCKET_OPTIONS
    if name
    in {
        "SO_DEBUG", "SO_REUSEADDR", "SO_DONTROUTE", "SO_BROADCAST", "SO_SNDBUF", "SO_RCVBUF",
        "SO_KEEPALIVE", "SO_OOBINLINE", "SO_NO_CHECK", "SO_PRIORITY", "SO_BSDCOMPAT",
        "SO_REUSEPORT", "SO_PASSCRED", "SO_RCVLOWAT", "SO_SNDLOWAT", "SO_DETACH_FILTER",
        "SO_TIMESTAMP_OLD", "SO_ACCEPTCONN", "SO_SNDBUFFORCE", "SO_RCVBUFFORCE", "SO_PASSSEC",
        "SO_TIMESTAMPNS_OLD", "SO_MARK", "SO_TIMESTAMPING_OLD", "SO_RXQ_OVFL",
        "SO_WIFI_STATUS", "SO_PEEK_OFF", "SO_NOFCS", "SO_LOCK_FILTER", "SO_SELECT_ERR_QUEUE",
        "SO_BUSY_POLL", "SO_INCOMING_CPU", "SO_CNX_ADVICE", "SO_INCOMING_NAPI_ID",
        "SO_ZEROCOPY", "SO_TIMESTAMP_NEW", "SO_TIMESTAMPNS_NEW", "SO_TIMESTAMPING_NEW",
        "SO_DETACH_REUSEPORT_BPF", "SO_PREFER_BUSY_POLL", "SO_BUSY_POLL_BUDGET",
        "SO_RESERVE_MEM", "SO_RCVMARK",
    }
)  # fmt: skip


def _int_or_text(ctx: Context, v: int, length: int, force_int: bool) -> Value:
    if length == 4 or (force_int and length >= 4):
        value = read_s32(ctx.memory, v)
        return Unreadable(v) if value is None else f"[{value}]"
    # strace's printstrn of an int length: a negative one is a huge unsigned length.
    return buffer(ctx, v, length & ((1 << 64) - 1))


class SockOptIn(Kind):
    """setsockopt's value (strace's ``print_setsockopt``): ``[1]``, a ``struct linger``,
    the bytes; the address when too short for what the option takes."""

    def decode(self, ctx: Context, v: int) -> Value:
        length = s32(ctx.args[4])
        level, name = ctx.args[1] & MASK32, ctx.args[2] & MASK32
        if v == 0:
            return "NULL"
        if level == _LEVELS.get("SOL_SOCKET"):
            if name == dict(F.SOCKET_OPTIONS).get("SO_LINGER"):
                if length < 8:
                    return hex(v)
                data = read(ctx.memory, v, 8)
                return Unreadable(v) if data is None else S.linger(data)
            if name in _SO_INT_OPTIONS:
                return hex(v) if length < 4 else _int_or_text(ctx, v, length, True)
        if level == _LEVELS.get("SOL_IP") and name in _IP_MREQ:
            return hex(v)  # struct ip_mreq / group_req: not decoded here
        if level == _LEVELS.get("SOL_NETLINK"):
            return hex(v) if length < 4 else _int_or_text(ctx, v, length, True)
        return _int_or_text(ctx, v, length, False)

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "bytes", 1, count_arg=4, capped=True)


_IP_MREQ = frozenset(
    value
    for name, value in F.IP_OPTIONS
    if name in ("IP_ADD_MEMBERSHIP", "IP_DROP_MEMBERSHIP", "MCAST_JOIN_GROUP", "MCAST_LEAVE_GROUP")
)


class SockOptOut(Kind):
    """getsockopt's value (strace's ``print_getsockopt``) and its in/out length (``[4]``,
    ``[16 => 4]``)."""

    when = EXIT

    def __init__(self, is_len: bool = False):
        self.is_len = is_len

    def save(self, ctx: Context, v: int) -> Any:
        lp = ctx.args[4]
        return read_s32(ctx.memory, lp) if lp else None

    def decode(self, ctx: Context, v: int) -> Value:
        ulen = ctx.saved.get(ctx.index)
        optval, lp = ctx.args[3], ctx.args[4]
        if ulen is None:
            return addr(v)
        rlen = None if ctx.failed else read_s32(ctx.memory, lp)
        if self.is_len:
            if rlen is None or rlen == ulen:
                return f"[{ulen if rlen is None else rlen}]"
            return f"[{ulen} => {rlen}]"
        if rlen is None or ulen <= 0 or rlen <= 0 or optval == 0:
            return addr(optval)
        level, name = ctx.args[1] & MASK32, ctx.args[2] & MASK32
        if level == _LEVELS.get("SOL_SOCKET"):
            so = dict(F.SOCKET_OPTIONS)
            if name == so.get("SO_LINGER"):
                data = read(ctx.memory, optval, min(rlen, 8))
                return Unreadable(optval) if data is None else S.linger(data)
            if name == so.get("SO_PEERCRED"):
                data = read(ctx.memory, optval, min(rlen, 12))
                return Unreadable(optval) if data is None else S.ucred(data)
            if name == so.get("SO_ERROR"):
                if rlen < 4:
                    return buffer(ctx, optval, rlen, hexed=True)
                value = read(ctx.memory, optval, 4)
                if value is None:
                    return Unreadable(optval)
                from ..linux import errno_name

                err = struct.unpack("<I", value)[0]
                return f"[{(errno_name(err) if err else None) or err}]"
            if name in _SO_INT_OPTIONS:
                if rlen >= 4:
                    return _int_or_text(ctx, optval, rlen, True)
                return buffer(ctx, optval, rlen, hexed=True)
        if level == _LEVELS.get("SOL_NETLINK"):
            if name == dict(F.NETLINK_OPTIONS).get("NETLINK_LIST_MEMBERSHIPS"):
                count = min(ulen, rlen) // 4
                return array(ctx, optval, count, 4, lambda d, c: str(struct.unpack("<I", d)[0]))
            return _int_or_text(ctx, optval, 4, True)
        return _int_or_text(ctx, optval, rlen, False)

    def footprint(self) -> Footprint:
        if self.is_len:
            return Footprint("both", "bytes", 4)
        # its length is *optlen's (memory): the budget of 4-byte elements
        return Footprint(EXIT, "array", 4, capped=True)


class SemBufs(Kind):
    """``struct sembuf`` array of argument *count* entries."""

    def __init__(self, count: int):
        self.count = count

    def decode(self, ctx: Context, v: int) -> Value:
        return array(ctx, v, ctx.args[self.count] & MASK32, 6, lambda d, c: S.sembuf(d))

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "array", 6, count_arg=self.count, capped=True)


class IoEvents(Kind):
    """io_getevents' events: as many as it returned."""

    when = EXIT

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        if ctx.failed:
            return hex(v)
        return array(ctx, v, max(ctx.ret or 0, 0), 32, io_event)

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "array", 32, count_ret=True, capped=True)


class PselectSigmask(Kind):
    """pselect6's sixth argument: ``{sigmask=[HUP], sigsetsize=8}``."""

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        data = read(ctx.memory, v, 16)
        if data is None:
            return Unreadable(v)
        mask, size = struct.unpack("<QQ", data)
        inner = SigSet().decode(Context(ctx.memory, ctx.options, (0, 0, 0, 0, 0, 0)), mask)
        if size != 8:
            inner = addr(mask)
        return Seq(("{sigmask=", inner, f", sigsetsize={size}}}"))

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "bytes", 16, follows="bytes")


def _waiter(data: bytes, ctx: Context) -> Value:
    val, uaddr, flags, reserved = struct.unpack("<QQII", data)
    text = (
        f"{{val={hex_c(val)}, uaddr={addr(uaddr)}, "
        f"flags={flag_set(flags, F.FUTEX2_FLAGS, dflt='FUTEX_???')}"
    )
    return text + (f", __reserved={hex_c(reserved)}}}" if reserved else "}")


#: strace prints ``...`` after this many waiters.
_FUTEX_WAITV_MAX = value_of(F.FUTEX_CONSTANTS, "FUTEX_WAITV_MAX")


class Waiters(Kind):
    """futex_waitv's ``struct futex_waitv`` array of argument 1 entries (at most
    ``FUTEX_WAITV_MAX`` of them, then ``...``)."""

    def decode(self, ctx: Context, v: int) -> Value:
        value = array(ctx, v, ctx.args[1] & MASK32, 24, _waiter)
        if isinstance(value, Items) and len(value.items) > _FUTEX_WAITV_MAX:
            return Items(value.items[:_FUTEX_WAITV_MAX], more=True, limit=value.limit)
        return value

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "array", 24, count_arg=1, capped=True)


class PageAddrs(Kind):
    """move_pages' pages: an array of addresses."""

    def decode(self, ctx: Context, v: int) -> Value:
        return array(ctx, v, ctx.args[1], 8, lambda d, c: addr(struct.unpack("<Q", d)[0]))

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "array", 8, count_arg=1, capped=True)


class NodeInts(Kind):
    """move_pages' nodes: an array of ``int``."""

    def decode(self, ctx: Context, v: int) -> Value:
        return array(ctx, v, ctx.args[1], 4, lambda d, c: str(struct.unpack("<i", d)[0]))

    def footprint(self) -> Footprint:
        return Footprint(ENTRY, "array", 4, count_arg=1, capped=True)


class PageStatus(Kind):
    """move_pages' status: nodes, or ``-EFAULT``-style errors by name."""

    when = EXIT

    def decode(self, ctx: Context, v: int) -> Value:
        from ..linux import errno_name

        def one(d: bytes, c: Context) -> Value:
            (status,) = struct.unpack("<i", d)
            if status < 0 and errno_name(-status):
                return f"-{errno_name(-status)}"
            return str(status)

        if ctx.failed:
            return addr(v)
        return array(ctx, v, ctx.args[1], 4, one)

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "array", 4, count_arg=1, capped=True)


class MMsgHdrs(Kind):
    """sendmmsg/recvmmsg's vector: ``[{msg_hdr={...}, msg_len=5}, ...]`` (printed at
    exit; ``msg_len`` of the messages the call handled)."""

    when = EXIT

    def __init__(self, recv: bool):
        self.recv = recv

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        vlen = ctx.args[2] & MASK32
        handled = 0 if ctx.failed else max(ctx.ret or 0, 0)
        recv = self.recv
        if ctx.failed and recv:
            return hex(v)
        index = [0]

        def one(d: bytes, c: Context) -> Value:
            i = index[0]
            index[0] += 1
            (msg_len,) = struct.unpack_from("<I", d, 56)
            if recv:
                hdr = msghdr(ctx, v + 64 * i, msg_len if i < handled else -1)
            else:
                hdr = msghdr(ctx, v + 64 * i, None)
            tail = f", msg_len={msg_len}}}" if i < handled else "}"
            return Seq(("{msg_hdr=", hdr, tail))

        return array(ctx, v, vlen, 64, one)

    def footprint(self) -> Footprint:
        return Footprint(EXIT, "array", 64, count_arg=2, capped=True, follows="bytes")


class SchedAttr(Kind):
    """``struct sched_attr``: sched_setattr's (its own ``size`` field says how much;
    ``=> {size=N}`` when the kernel said E2BIG and wrote the size it wants), or
    sched_getattr's (argument 2 bytes, printed at exit)."""

    def __init__(self, when: str = ENTRY):
        self.when = when

    def save(self, ctx: Context, v: int) -> Any:
        return self._set(ctx, v)

    def _set(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        head = read(ctx.memory, v, 4)
        if head is None:
            return Unreadable(v)
        usize = struct.unpack("<I", head)[0] or _SCHED_ATTR_MIN
        size = min(usize, _SCHED_ATTR_VER1)
        data = read(ctx.memory, v, size) if size >= _SCHED_ATTR_MIN else head
        if data is None:
            return Unreadable(v)
        return sched_attr(data, size, usize, True)

    def decode(self, ctx: Context, v: int) -> Value:
        if ctx.ret is None:
            return self._set(ctx, v)
        if self.when == ENTRY:  # never: sched_setattr's is printed at exit (saved)
            return self._set(ctx, v)
        if not ctx.exiting:
            return addr(v)
        return self._get(ctx, v)

    def _get(self, ctx: Context, v: int) -> Value:
        usize = ctx.args[2] & MASK32
        if not usize or v == 0:
            return addr(v)
        if ctx.failed:
            return hex(v)
        size = min(usize, _SCHED_ATTR_VER1)
        data = read(ctx.memory, v, size)
        if data is None:
            return Unreadable(v)
        return sched_attr(data, size, usize, False)

    def footprint(self) -> Footprint:
        return Footprint(self.when, "bytes", _SCHED_ATTR_VER1)


class SchedAttrSet(SchedAttr):
    """sched_setattr's attributes: decoded at entry, ``=> {size=N}`` added at exit when the
    kernel answered E2BIG (it wrote the size it wants)."""

    when = EXIT

    def __init__(self) -> None:
        pass

    def decode(self, ctx: Context, v: int) -> Value:
        before = ctx.saved.get(ctx.index)
        if before is None:
            before = self._set(ctx, v)
        if ctx.ret == -7 and v:  # E2BIG
            size = read(ctx.memory, v, 4)
            if size is not None:
                return Seq((before, f" => {{size={struct.unpack('<I', size)[0]}}}"))
        return before

    def footprint(self) -> Footprint:
        return Footprint("both", "bytes", _SCHED_ATTR_VER1)
