"""Guest structs (x86-64 layouts) in strace's default, abbreviated text.

Each decoder takes the raw bytes of the struct (read by the caller) and the decoding
:class:`~.args.Context` (unused by most) and returns its text; sizes are in :data:`SIZES`.
Layouts are the x86-64 kernel ABI (``asm/stat.h``, ``struct new_utsname``, ``struct
__kernel_timespec``, the kernel's ``struct sigaction``, ``siginfo_t``...); field formats
are strace 6.1's (``print_struct_stat``, ``printsiginfo``, ``printrusage``...), without
``-v`` (``...`` where strace abbreviates).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from ..linux import flags as F
from .quote import quote
from .xlat import file_mode, flag_set, signal_name, sigset, value_of, xval

__all__ = ["SIZES", "hex_c"]

NUL = b"\0"

SIZES = {
    "stat": 144,
    "statx": 256,
    "statfs": 120,
    "utsname": 6 * 65,
    "timespec": 16,
    "timeval": 16,
    "itimerval": 32,
    "itimerspec": 32,
    "timezone": 8,
    "sigaction": 32,
    "rlimit64": 16,
    "pollfd": 8,
    "rusage": 144,
    "sysinfo": 112,
    "tms": 32,
    "flock": 32,
    "f_owner_ex": 8,
    "siginfo": 128,
    "stack_t": 24,
    "epoll_event": 12,
    "sched_param": 4,
    "timex": 208,
    "mq_attr": 64,
    "sigevent": 32,
    "iovec": 16,
    "msghdr": 56,
    "mmsghdr": 64,
    "cap_header": 8,
    "cap_data": 12,
    "sembuf": 6,
    "user_desc": 16,
    "clone_args": 88,
    "open_how": 24,
    "io_event": 32,
    "linger": 8,
    "ucred": 12,
    "getcpu_cache": 128,
    "robust_list_head": 24,
    "sock_fprog": 16,
    "futex_waitv": 24,
    "mount_attr": 32,
    "landlock_ruleset_attr": 8,
    "rseq": 32,
}


def hex_c(value: int) -> str:
    """*value* as C's ``%#x``: ``0x1f``, but ``0`` for zero."""
    return hex(value) if value else "0"


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def addr(value: int) -> str:
    """strace's ``printaddr``: ``NULL`` or hex."""
    return hex(value) if value else "NULL"


def dev(value: int) -> str:
    """A ``dev_t`` as strace: ``makedev(0x1, 0x3)`` (glibc's major/minor split)."""
    major = ((value >> 32) & 0xFFFF_F000) | ((value >> 8) & 0xFFF)
    minor = ((value >> 12) & 0xFFFF_FF00) | (value & 0xFF)
    return f"makedev({hex_c(major)}, {hex_c(minor)})"


def clock_t(value: int) -> str:
    """strace's ``print_clock_t`` (``CLK_TCK`` 100): ``123 /* 1.23 s */``."""
    if value == 0:
        return "0"
    return f"{value} /* {value // 100}.{value % 100:02d} s */"


def _uint_list(values: Any) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


# -- files --------------------------------------------------------------------------------


def stat(data: bytes, ctx: Any = None) -> str:
    """``struct stat`` as ``{st_mode=S_IFREG|0644, st_size=1274, ...}``; device files give
    ``st_rdev=makedev(0x1, 0x3)`` instead of the size."""
    (mode,) = struct.unpack_from("<I", data, 24)
    (rdev,) = struct.unpack_from("<Q", data, 40)
    (size,) = struct.unpack_from("<q", data, 48)
    kind = mode & value_of(F.MODE_CONSTANTS, "S_IFMT")
    if kind in (value_of(F.FILE_TYPES, "S_IFCHR"), value_of(F.FILE_TYPES, "S_IFBLK")):
        detail = f"st_rdev={dev(rdev)}"
    else:
        detail = f"st_size={size & ((1 << 64) - 1)}"
    return f"{{st_mode={file_mode(mode)}, {detail}, ...}}"


_STATX = dict(F.STATX_MASKS)


def statx(data: bytes, ctx: Any = None) -> str:
    """``struct statx`` abbreviated: ``{stx_mask=..., stx_attributes=0, stx_mode=...,
    stx_size=..., ...}``."""
    mask, _blksize, attributes = struct.unpack_from("<IIQ", data, 0)
    (mode,) = struct.unpack_from("<H", data, 28)
    (size,) = struct.unpack_from("<Q", data, 40)
    parts = [
        f"stx_mask={flag_set(mask, F.STATX_MASKS, dflt='STATX_???')}",
        f"stx_attributes={flag_set(attributes, F.STATX_ATTRS, dflt='STATX_ATTR_???')}",
    ]
    if mask & (_STATX.get("STATX_TYPE", 1) | _STATX.get("STATX_MODE", 2)):
        parts.append(f"stx_mode={file_mode(mode)}")
    if mask & _STATX.get("STATX_SIZE", 0x200):
        parts.append(f"stx_size={size}")
    return "{" + ", ".join(parts) + ", ...}"


def statfs(data: bytes, ctx: Any = None) -> str:
    """``struct statfs`` (x86-64: ``__statfs_word`` is 64 bits)."""
    (f_type, bsize, blocks, bfree, bavail, files, ffree) = struct.unpack_from("<qqQQQQQ", data)
    fsid = struct.unpack_from("<ii", data, 56)
    namelen, frsize, flags = struct.unpack_from("<qqq", data, 64)
    ftype = xval(f_type & 0xFFFF_FFFF_FFFF_FFFF, F.FS_MAGIC)
    text = (
        f"{{f_type={ftype}, f_bsize={bsize}, f_blocks={blocks}, f_bfree={bfree}, "
        f"f_bavail={bavail}, f_files={files}, f_ffree={ffree}, "
        f"f_fsid={{val=[{hex_c(fsid[0] & 0xFFFFFFFF)}, {hex_c(fsid[1] & 0xFFFFFFFF)}]}}, "
        f"f_namelen={namelen}, f_frsize={frsize}"
    )
    if flags & 0x20:  # ST_VALID (kernel-internal)
        rest = flags & ~0x20
        names = flag_set(rest, F.STATFS_FLAGS) if rest else ""
        text += ", f_flags=ST_VALID" + ("|" + names if names else "")
    return text + "}"


def utsname(data: bytes, ctx: Any = None) -> str:
    """``struct new_utsname`` as ``{sysname="Linux", nodename="web01", ...}``."""
    fields = [data[i * 65 : (i + 1) * 65].split(b"\0", 1)[0] for i in range(2)]
    return f"{{sysname={quote(fields[0])}, nodename={quote(fields[1])}, ...}}"


def flock(data: bytes, ctx: Any = None, getlk: bool = False) -> str:
    """``struct flock``: ``{l_type=F_RDLCK, l_whence=SEEK_SET, l_start=0, l_len=0}`` (and
    ``l_pid`` for F_GETLK)."""
    ltype, whence, start, length, pid = struct.unpack_from("<hh4xqqi", data)
    text = (
        f"{{l_type={xval(ltype & 0xFFFF, F.LOCK_TYPES, 'F_???')}, "
        f"l_whence={xval(whence & 0xFFFF, F.WHENCE, 'SEEK_???')}, "
        f"l_start={start}, l_len={length}"
    )
    return text + (f", l_pid={pid}}}" if getlk else "}")


def flock_getlk(data: bytes, ctx: Any = None) -> str:
    return flock(data, ctx, getlk=True)


def f_owner_ex(data: bytes, ctx: Any = None) -> str:
    kind, pid = struct.unpack("<ii", data)
    return f"{{type={xval(kind & 0xFFFFFFFF, F.F_OWNER_TYPES, 'F_OWNER_???')}, pid={pid}}}"


def dirent64_count(data: bytes) -> int:
    """Number of ``struct linux_dirent64`` records in *data* (``d_reclen`` at offset 16)."""
    count = offset = 0
    while offset + 19 <= len(data):
        (reclen,) = struct.unpack_from("<H", data, offset + 16)
        if reclen == 0:
            break
        count += 1
        offset += reclen
    return count


def dirent_count(data: bytes) -> int:
    """Number of ``struct linux_dirent`` records in *data* (``d_reclen`` at offset 16)."""
    return dirent64_count(data)


# -- time ---------------------------------------------------------------------------------


def timespec(data: bytes, ctx: Any = None) -> str:
    """``struct __kernel_timespec`` as ``{tv_sec=0, tv_nsec=1000}`` (``tv_nsec`` unsigned,
    as strace prints it)."""
    sec, nsec = struct.unpack("<qQ", data[:16])
    return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def timeval(data: bytes, ctx: Any = None) -> str:
    """``struct __kernel_old_timeval`` as ``{tv_sec=0, tv_usec=5}``."""
    sec, usec = struct.unpack("<qQ", data[:16])
    return f"{{tv_sec={sec}, tv_usec={usec}}}"


def itimerval(data: bytes, ctx: Any = None) -> str:
    return f"{{it_interval={timeval(data[:16])}, it_value={timeval(data[16:32])}}}"


def itimerspec(data: bytes, ctx: Any = None) -> str:
    return f"{{it_interval={timespec(data[:16])}, it_value={timespec(data[16:32])}}}"


def timezone(data: bytes, ctx: Any = None) -> str:
    west, dst = struct.unpack("<ii", data)
    return f"{{tz_minuteswest={west}, tz_dsttime={dst}}}"


def timex(data: bytes, ctx: Any = None) -> str:
    """``struct __kernel_timex`` (adjtimex) abbreviated as strace: modes, offset, freq,
    maxerror, esterror, status, constant, precision, tolerance, time, tick, ppsfreq,
    jitter, shift, stabil, jitcnt, calcnt, errcnt, stbcnt, tai."""
    (modes,) = struct.unpack_from("<I", data, 0)
    offset, freq, maxerror, esterror = struct.unpack_from("<qqqq", data, 8)
    (status,) = struct.unpack_from("<i", data, 40)
    constant, precision, tolerance = struct.unpack_from("<qqq", data, 48)
    tsec, tusec = struct.unpack_from("<qq", data, 72)
    tick, ppsfreq, jitter = struct.unpack_from("<qqq", data, 88)
    (shift,) = struct.unpack_from("<i", data, 112)
    stabil, jitcnt, calcnt, errcnt, stbcnt = struct.unpack_from("<qqqqq", data, 120)
    (tai,) = struct.unpack_from("<i", data, 160)
    return (
        f"{{modes={flag_set(modes, F.ADJTIME_MODES)}, offset={offset}, freq={freq}, "
        f"maxerror={maxerror}, esterror={esterror}, "
        f"status={flag_set(status & 0xFFFFFFFF, F.ADJTIME_STATUS)}, constant={constant}, "
        f"precision={precision}, tolerance={tolerance}, "
        f"time={{tv_sec={tsec}, tv_usec={tusec}}}, tick={tick}, ppsfreq={ppsfreq}, "
        f"jitter={jitter}, shift={shift}, stabil={stabil}, jitcnt={jitcnt}, "
        f"calcnt={calcnt}, errcnt={errcnt}, stbcnt={stbcnt}, tai={tai}}}"
    )


# -- signals ------------------------------------------------------------------------------


_SA_RESTORER = value_of(F.SIGACTION_FLAGS, "SA_RESTORER")


def sa_handler(handler: int) -> str:
    """``SIG_DFL``, ``SIG_IGN``, ``SIG_ERR`` or the address."""
    for name, value in F.SIGNAL_HANDLERS:
        if value & 0xFFFF_FFFF_FFFF_FFFF == handler:
            return name
    return addr(handler)


def kernel_sigaction(data: bytes, ctx: Any = None) -> str:
    """The kernel's ``struct sigaction`` (x86-64: handler, flags, restorer, mask) as
    ``{sa_handler=SIG_IGN, sa_mask=[HUP], sa_flags=SA_RESTORER|SA_RESTART, sa_restorer=0x...}``
    (``sa_restorer`` only with ``SA_RESTORER``, as strace)."""
    handler, flags, restorer = struct.unpack_from("<QQQ", data)
    text = (
        f"{{sa_handler={sa_handler(handler)}, sa_mask={sigset(data[24:32])}, "
        f"sa_flags={flag_set(flags, F.SIGACTION_FLAGS, dflt='SA_???')}"
    )
    if flags & _SA_RESTORER:
        text += f", sa_restorer={addr(restorer)}"
    return text + "}"


def stack_t(data: bytes, ctx: Any = None) -> str:
    """``stack_t``: ``{ss_sp=0x..., ss_flags=0, ss_size=8192}``."""
    sp, flags, size = struct.unpack("<Qi4xQ", data)
    flag_text = flag_set(flags & 0xFFFFFFFF, F.SIGALTSTACK_FLAGS, dflt="SS_???")
    return f"{{ss_sp={addr(sp)}, ss_flags={flag_text}, ss_size={size}}}"


_SIG = dict(F.SIGNALS)
_SI_CODE_TABLES = {
    _SIG["SIGTRAP"]: F.SIGTRAP_CODES,
    _SIG["SIGCHLD"]: F.SIGCHLD_CODES,
    _SIG["SIGIO"]: F.SIGPOLL_CODES,
    _SIG["SIGILL"]: F.SIGILL_CODES,
    _SIG["SIGFPE"]: F.SIGFPE_CODES,
    _SIG["SIGSEGV"]: F.SIGSEGV_CODES,
    _SIG["SIGBUS"]: F.SIGBUS_CODES,
    _SIG["SIGSYS"]: F.SIGSYS_CODES,
}
_SI = dict(F.SI_CODES)


def si_code(code: int, signo: int) -> str:
    """``si_code`` by strace's rules: a generic code (``SI_USER``), else the signal's own
    (``CLD_EXITED``), else the number."""
    for name, value in F.SI_CODES:
        if value == code:
            return name
    table = _SI_CODE_TABLES.get(signo)
    if table:
        for name, value in table:
            if value == code:
                return name
    return hex(code) if code > 0 else str(code)


def signal_value(sig: int) -> str:
    return signal_name(sig) if sig > 0 else str(sig)


def siginfo(data: bytes, ctx: Any = None) -> str:
    """``siginfo_t`` as strace: ``{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=12,
    si_uid=0, si_status=0, si_utime=0, si_stime=0}``."""
    signo, errno, code = struct.unpack_from("<iii", data)
    if not signo:
        return "{}"
    parts = [f"si_signo={signal_value(signo)}", f"si_code={si_code(code, signo)}"]

    def source() -> None:
        pid, uid = struct.unpack_from("<iI", data, 16)
        parts.append(f"si_pid={pid}")
        parts.append(f"si_uid={'-1' if uid == 0xFFFFFFFF else uid}")

    def sigval() -> None:
        (sival_int,) = struct.unpack_from("<i", data, 24)
        (sival_ptr,) = struct.unpack_from("<Q", data, 24)
        parts.append(f"si_int={sival_int}")
        parts.append(f"si_ptr={addr(sival_ptr)}")

    if errno:
        from ..linux import errno_name

        name = errno_name(errno) if errno > 0 else None
        parts.append(f"si_errno={name or errno & 0xFFFFFFFF}")
    (si_ptr,) = struct.unpack_from("<Q", data, 24)
    (si_addr,) = struct.unpack_from("<Q", data, 16)
    if code <= 0:  # SI_FROMUSER
        if code in (_SI.get("SI_USER", 0), _SI.get("SI_TKILL", -6)):
            source()
        elif code == _SI.get("SI_TIMER", -2):
            tid, overrun = struct.unpack_from("<ii", data, 16)
            parts.append(f"si_timerid={hex_c(tid & 0xFFFFFFFF)}")
            parts.append(f"si_overrun={overrun}")
            sigval()
        elif code == _SI.get("SI_SIGIO", -5):
            (band,) = struct.unpack_from("<q", data, 16)
            (fd,) = struct.unpack_from("<i", data, 24)
            parts.append(f"si_band={band}")
            parts.append(f"si_fd={fd}")
        else:
            source()
            if si_ptr:
                sigval()
    elif signo == _SIG["SIGCHLD"]:
        source()
        (status,) = struct.unpack_from("<i", data, 24)
        utime, stime = struct.unpack_from("<qq", data, 32)
        exited = dict(F.SIGCHLD_CODES).get("CLD_EXITED", 1)
        parts.append(f"si_status={status if code == exited else signal_value(status)}")
        parts.append(f"si_utime={clock_t(utime)}")
        parts.append(f"si_stime={clock_t(stime)}")
    elif signo in (_SIG["SIGILL"],):
        (trapno,) = struct.unpack_from("<i", data, 24)
        parts.append(f"si_addr={addr(si_addr)}")
        parts.append(f"si_trapno={trapno}")
    elif signo in (_SIG["SIGFPE"],):
        (trapno,) = struct.unpack_from("<i", data, 24)
        parts.append(f"si_addr={addr(si_addr)}")
        parts.append(f"si_trapno={trapno}")
    elif signo in (_SIG["SIGBUS"], _SIG["SIGSEGV"], _SIG["SIGTRAP"]):
        parts.append(f"si_addr={addr(si_addr)}")
        if signo == _SIG["SIGBUS"] and code in (4, 5):  # BUS_MCEERR_AR/AO
            (lsb,) = struct.unpack_from("<h", data, 24)
            parts.append(f"si_addr_lsb={hex_c(lsb & 0xFFFF)}")
        elif signo == _SIG["SIGSEGV"] and code == 3:  # SEGV_BNDERR
            lower, upper = struct.unpack_from("<QQ", data, 32)
            parts += [f"si_lower={addr(lower)}", f"si_upper={addr(upper)}"]
        elif signo == _SIG["SIGSEGV"] and code == 4:  # SEGV_PKUERR
            (pkey,) = struct.unpack_from("<I", data, 32)
            parts.append(f"si_pkey={pkey}")
    elif signo == _SIG["SIGIO"]:
        if 1 <= code <= 6:  # POLL_IN .. POLL_HUP
            (band,) = struct.unpack_from("<q", data, 16)
            (fd,) = struct.unpack_from("<i", data, 24)
            parts += [f"si_band={band}", f"si_fd={fd}"]
    elif signo == _SIG["SIGSYS"]:
        call_addr = si_addr
        nr, arch = struct.unpack_from("<iI", data, 24)
        from ..linux import syscall_name

        parts.append(f"si_call_addr={addr(call_addr)}")
        parts.append(f"si_syscall=__NR_{syscall_name(nr)}")
        parts.append(f"si_arch={'AUDIT_ARCH_X86_64' if arch == 0xC000003E else hex(arch)}")
    else:
        pid, uid = struct.unpack_from("<iI", data, 16)
        if pid or uid:
            source()
        if si_ptr:
            sigval()
    return "{" + ", ".join(parts) + "}"


# -- processes and resources --------------------------------------------------------------


def _rlim(value: int) -> str:
    if value == (1 << 64) - 1:
        return "RLIM64_INFINITY"
    if value > 1024 and value % 1024 == 0:
        return f"{value // 1024}*1024"
    return str(value)


def rlimit64(data: bytes, ctx: Any = None) -> str:
    """``struct rlimit64`` as ``{rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}``."""
    cur, maximum = struct.unpack("<QQ", data)
    return f"{{rlim_cur={_rlim(cur)}, rlim_max={_rlim(maximum)}}}"


def rusage(data: bytes, ctx: Any = None) -> str:
    """``struct rusage`` abbreviated: ``{ru_utime={tv_sec=0, tv_usec=0}, ru_stime=...,
    ...}``."""
    return f"{{ru_utime={timeval(data[:16])}, ru_stime={timeval(data[16:32])}, ...}}"


def sysinfo(data: bytes, ctx: Any = None) -> str:
    uptime, l1, l2, l3, total, free, shared, buf, tswap, fswap = struct.unpack_from("<q3Q6Q", data)
    (procs,) = struct.unpack_from("<H", data, 80)
    thigh, fhigh = struct.unpack_from("<QQ", data, 88)
    (unit,) = struct.unpack_from("<I", data, 104)
    return (
        f"{{uptime={uptime}, loads=[{l1}, {l2}, {l3}], totalram={total}, freeram={free}, "
        f"sharedram={shared}, bufferram={buf}, totalswap={tswap}, freeswap={fswap}, "
        f"procs={procs}, totalhigh={thigh}, freehigh={fhigh}, mem_unit={unit}}}"
    )


def tms(data: bytes, ctx: Any = None) -> str:
    u, s, cu, cs = struct.unpack("<QQQQ", data)
    return (
        f"{{tms_utime={clock_t(u)}, tms_stime={clock_t(s)}, tms_cutime={clock_t(cu)}, "
        f"tms_cstime={clock_t(cs)}}}"
    )


def wait_status(status: int) -> str:
    """A wait status as strace: ``[{WIFEXITED(s) && WEXITSTATUS(s) == 7}]``."""
    status &= 0xFFFF_FFFF
    low = status & 0x7F
    if status & 0xFF == 0x7F:  # WIFSTOPPED
        sig = (status >> 8) & 0xFF
        text = f"{{WIFSTOPPED(s) && WSTOPSIG(s) == {signal_value(sig & 0x7F)}"
        text += " | 0x80}" if sig & 0x80 else "}"
        rest = status & ~((sig << 8) | 0x7F)
    elif low and low != 0x7F:  # WIFSIGNALED
        text = f"{{WIFSIGNALED(s) && WTERMSIG(s) == {signal_value(low)}"
        text += " && WCOREDUMP(s)}" if status & 0x80 else "}"
        rest = status & ~(low | 0x80)
    elif low == 0:  # WIFEXITED
        text = f"{{WIFEXITED(s) && WEXITSTATUS(s) == {(status >> 8) & 0xFF}}}"
        rest = status & ~0xFF00
    elif status == 0xFFFF:
        text = "{WIFCONTINUED(s)}"
        rest = 0
    else:
        return f"[{hex_c(status)}]"
    if rest:
        event = rest >> 16
        if event:
            text += f" | {xval(event, F.PTRACE_EVENTS, 'PTRACE_EVENT_???')}<<16"
            rest &= 0xFFFF
        if rest:
            text += f" | {hex(rest)}"
    return f"[{text}]"


def sched_param(data: bytes, ctx: Any = None) -> str:
    return f"[{struct.unpack('<i', data)[0]}]"


def cap_header(data: bytes, ctx: Any = None) -> str:
    version, pid = struct.unpack("<Ii", data)
    return (
        f"{{version={xval(version, F.CAP_VERSIONS, '_LINUX_CAPABILITY_VERSION_???')}, pid={pid}}}"
    )


def cap_data(data: bytes, ctx: Any = None) -> str:
    """Two ``struct __user_cap_data_struct`` (version 3): ``{effective=1<<CAP_CHOWN|...,
    permitted=..., inheritable=...}``."""
    e0, p0, i0 = struct.unpack_from("<III", data, 0)
    e1, p1, i1 = struct.unpack_from("<III", data, 12) if len(data) >= 24 else (0, 0, 0)
    return (
        f"{{effective={_capset(e0, e1)}, permitted={_capset(p0, p1)}, "
        f"inheritable={_capset(i0, i1)}}}"
    )


def _capset(lo: int, hi: int) -> str:
    value = lo | (hi << 32)
    if not value:
        return "0"
    names = []
    rest = value
    for name, bit in F.CAPABILITIES:
        if value >> bit & 1:
            names.append(f"1<<{name}")
            rest &= ~(1 << bit)
    if rest:
        names.append(hex(rest))
    return "|".join(names)


# -- polling and descriptors --------------------------------------------------------------


def pollfd(data: bytes, ctx: Any = None) -> str:
    """One ``struct pollfd`` at entry: ``{fd=0, events=POLLIN}`` (``{fd=-1}`` for a
    negative fd)."""
    fd, events, _revents = struct.unpack("<ihh", data)
    if fd < 0:
        return f"{{fd={fd}}}"
    return f"{{fd={fd}, events={flag_set(events & 0xFFFF, F.POLL_EVENTS, dflt='POLL???')}}}"


def pollfds_revents(data: bytes, limit: int) -> str | None:
    """The ``revents`` part of poll's return: ``[{fd=0, revents=POLLIN}]`` (entries with
    events only, at most *limit*); None when none has any."""
    items = []
    for i in range(0, len(data) - 7, 8):
        fd, _events, revents = struct.unpack_from("<ihh", data, i)
        if not revents:
            continue
        if len(items) >= limit:
            items.append("...")
            break
        items.append(f"{{fd={fd}, revents={flag_set(revents & 0xFFFF, F.POLL_EVENTS)}}}")
    return "[" + ", ".join(items) + "]" if items else None


def _hex_0x(value: int, width: int = 8) -> str:
    """C's ``%#0*x`` with *width*: ``0x001234``; zero has no prefix (``00000000``)."""
    return f"{value:#0{width}x}" if value else "0" * width


def user_desc(data: bytes, ctx: Any = None) -> str:
    """``struct user_desc`` (asm/ldt.h) as strace's ``print_user_desc``: ``{entry_number=6,
    base_addr=0x87868584, limit=0xfffff, seg_32bit=1, ..., lm=0}``."""
    entry, base, limit, bits = struct.unpack("<IIII", data[:16])
    entry_text = "-1" if entry == 0xFFFFFFFF else str(entry)
    fields = (
        ("seg_32bit", 0, 1),
        ("contents", 1, 3),
        ("read_exec_only", 3, 1),
        ("limit_in_pages", 4, 1),
        ("seg_not_present", 5, 1),
        ("useable", 6, 1),
        ("lm", 7, 1),
    )
    flags = ", ".join(f"{name}={bits >> shift & mask}" for name, shift, mask in fields)
    return (
        f"{{entry_number={entry_text}, base_addr={_hex_0x(base)}, limit={_hex_0x(limit)}, {flags}}}"
    )


def fd_set(data: bytes, nfds: int) -> str:
    """An ``fd_set`` of *nfds* descriptors as ``[0 3]``."""
    bits = int.from_bytes(data, "little")
    return "[" + " ".join(str(fd) for fd in range(nfds) if bits >> fd & 1) + "]"


def epoll_event(data: bytes, ctx: Any = None) -> str:
    """``struct epoll_event`` (packed on x86-64): ``{events=EPOLLIN, data={u32=3,
    u64=3}}``."""
    events, u64 = struct.unpack("<IQ", data[:12])
    return (
        f"{{events={flag_set(events, F.EPOLL_EVENTS, dflt='EPOLL???')}, "
        f"data={{u32={u64 & 0xFFFFFFFF}, u64={u64}}}}}"
    )


def mq_attr(data: bytes, ctx: Any = None, decode_flags: bool = True) -> str:
    """``struct mq_attr`` (mq_open's without naming its flags)."""
    flags, maxmsg, msgsize, curmsgs = struct.unpack_from("<qqqq", data)
    flags &= 0xFFFF_FFFF_FFFF_FFFF
    text = flag_set(flags, F.MQ_ATTR_FLAGS, dflt="O_???") if decode_flags else hex_c(flags)
    return f"{{mq_flags={text}, mq_maxmsg={maxmsg}, mq_msgsize={msgsize}, mq_curmsgs={curmsgs}}}"


def sigevent(data: bytes, ctx: Any = None) -> str:
    """``struct sigevent``: ``{sigev_value={sival_int=0, sival_ptr=0x1}, sigev_signo=SIGALRM,
    sigev_notify=SIGEV_SIGNAL}`` (the value only when its pointer is set; the signal by name
    only for the notifications that send one)."""
    (ptr,) = struct.unpack_from("<Q", data, 0)
    (sival_int,) = struct.unpack_from("<i", data, 0)
    signo, notify = struct.unpack_from("<ii", data, 8)
    sigev = dict(F.SIGEV_NOTIFY)
    parts = []
    if ptr:
        parts.append(f"sigev_value={{sival_int={sival_int}, sival_ptr={addr(ptr)}}}")
    signal_kinds = (
        sigev.get("SIGEV_SIGNAL"),
        sigev.get("SIGEV_THREAD"),
        sigev.get("SIGEV_THREAD_ID"),
    )
    if notify in signal_kinds:
        parts.append(f"sigev_signo={signal_value(signo)}")
    else:
        parts.append(f"sigev_signo={signo & 0xFFFFFFFF}")
    parts.append(f"sigev_notify={xval(notify, F.SIGEV_NOTIFY, 'SIGEV_???')}")
    if notify == sigev.get("SIGEV_THREAD_ID"):
        (tid,) = struct.unpack_from("<i", data, 16)
        parts.append(f"sigev_notify_thread_id={tid}")
    elif notify == sigev.get("SIGEV_THREAD"):
        fn, attr = struct.unpack_from("<QQ", data, 16)
        parts += [f"sigev_notify_function={addr(fn)}", f"sigev_notify_attributes={addr(attr)}"]
    return "{" + ", ".join(parts) + "}"


# -- sockets ------------------------------------------------------------------------------


def sockaddr(data: bytes, ctx: Any = None) -> str:
    """A ``struct sockaddr`` of *len(data)* bytes (strace's ``print_sockaddr``): the family,
    then its fields when the length covers them (``{sa_family=AF_INET, sin_port=htons(80),
    sin_addr=inet_addr("127.0.0.1")}``, ``{sa_family=AF_UNIX, sun_path="/run/x"}``), else
    the raw ``sa_data``."""
    if len(data) < 2:
        return "{}" if not data else f"{{sa_family={data[0]:#x}}}"
    (family,) = struct.unpack_from("<H", data)
    head = f"sa_family={xval(family, F.ADDRESS_FAMILIES, 'AF_???')}"
    size = len(data)
    if size == 2:
        return f"{{{head}}}"
    af = dict(F.ADDRESS_FAMILIES)
    if family == af["AF_UNIX"]:
        path_len = min(size, 110) - 2
        path = data[2 : 2 + path_len]
        if path[:1] != NUL:
            return f"{{{head}, sun_path={quote(path.split(NUL, 1)[0])}}}"
        return f"{{{head}, sun_path=@{quote(path[1:])}}}"
    if family == af["AF_INET"] and size >= 16:
        (port,) = struct.unpack_from(">H", data, 2)
        address = ipaddress.IPv4Address(data[4:8])
        return f'{{{head}, sin_port=htons({port}), sin_addr=inet_addr("{address}")}}'
    if family == af["AF_INET6"] and size >= 24:
        port, flow = struct.unpack_from(">HI", data, 2)
        address = ipaddress.IPv6Address(data[8:24])
        text = (
            f"{{{head}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), "
            f'inet_pton(AF_INET6, "{address}", &sin6_addr)'
        )
        if size > 24:
            scope = struct.unpack_from("<I", data, 24)[0] if size >= 28 else 0
            text += f", sin6_scope_id={scope}"
        return text + "}"
    if family == af["AF_NETLINK"] and size >= 12:
        pad, pid, groups = struct.unpack_from("<HIi", data, 2)
        pad_text = f"nl_pad={hex_c(pad)}, " if pad else ""
        return f"{{{head}, {pad_text}nl_pid={pid}, nl_groups={groups & 0xFFFFFFFF:#010x}}}"
    if family == af["AF_PACKET"] and size >= 20:
        (protocol,) = struct.unpack_from(">H", data, 2)
        ifindex, hatype, pkttype, halen = struct.unpack_from("<iHBB", data, 4)
        addr_bytes = data[12 : 12 + min(halen, 8)]
        text = (
            f"{{{head}, sll_protocol=htons({xval(protocol, F.ETHERNET_PROTOCOLS, 'ETH_P_???')}), "
            f"sll_ifindex={ifindex & 0xFFFFFFFF}, "
            f"sll_hatype={xval(hatype, F.ARPHRD_TYPES, 'ARPHRD_???')}, "
            f"sll_pkttype={xval(pkttype, F.PACKET_TYPES, 'PACKET_???')}, sll_halen={halen}"
        )
        if halen:
            text += ", sll_addr=[" + ", ".join(hex_c(b) for b in addr_bytes) + "]"
        return text + "}"
    return f"{{{head}, sa_data={quote(data[2:])}}}"


def _partial_fields(data: bytes, fields: tuple[tuple[str, str], ...]) -> str:
    """A struct of *len(data)* bytes, shorter than the struct maybe, as strace's
    ``MAYBE_PRINT_FIELD_LEN``: each whole field, then the bytes of a cut one in hex."""
    parts = []
    offset = 0
    for name, spec in fields:
        width = struct.calcsize(spec)
        if len(data) >= offset + width:
            (value,) = struct.unpack_from(spec, data, offset)
            if name in ("uid", "gid") and value == 0xFFFFFFFF:
                value = -1
            parts.append(f"{name}={value}")
        else:
            if len(data) > offset:
                from .quote import quote_hex

                parts.append(f"{name}={quote_hex(data[offset:])}")
            break
        offset += width
    return "{" + ", ".join(parts) + "}"


def linger(data: bytes, ctx: Any = None) -> str:
    """``struct linger`` of *len(data)* bytes."""
    return _partial_fields(data, (("l_onoff", "<i"), ("l_linger", "<i")))


def ucred(data: bytes, ctx: Any = None) -> str:
    """``struct ucred`` of *len(data)* bytes."""
    return _partial_fields(data, (("pid", "<i"), ("uid", "<I"), ("gid", "<I")))


# -- memory and misc ----------------------------------------------------------------------


def clone_args(data: bytes, ctx: Any = None, size: int = 88) -> str:
    """``struct clone_args`` (clone3): the fields strace prints when set."""
    (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls) = struct.unpack_from(
        "<8Q", data
    )
    parts = [f"flags={flag_set(flags, F.CLONE_FLAGS + F.CLONE3_FLAGS, dflt='CLONE_???')}"]
    if flags & dict(F.CLONE3_FLAGS).get("CLONE_PIDFD", 0x1000):
        parts.append(f"pidfd={addr(pidfd)}")
    if flags & (0x01000000 | 0x00200000):  # CHILD_SETTID|CHILD_CLEARTID
        parts.append(f"child_tid={addr(child_tid)}")
    if flags & 0x00100000:  # PARENT_SETTID
        parts.append(f"parent_tid={addr(parent_tid)}")
    parts.append(f"exit_signal={signal_value(exit_signal) if exit_signal else 0}")
    parts.append(f"stack={addr(stack)}")
    parts.append(f"stack_size={hex_c(stack_size)}")
    if flags & 0x00080000:  # SETTLS
        parts.append(f"tls={addr(tls)}")
    set_tid, set_tid_size, cgroup = struct.unpack_from("<QQQ", data, 64)
    if set_tid or set_tid_size:
        tids = None
        if set_tid and set_tid_size and set_tid_size <= 32 and ctx is not None:
            from .args import array

            tids = array(ctx, set_tid, set_tid_size, 4, lambda d, c: str(struct.unpack("<i", d)[0]))
        if tids is None:
            parts.append(f"set_tid={addr(set_tid)}")
        else:
            from .values import render

            parts.append(f"set_tid={render(tids, ctx.options.capture_bytes)}")
        parts.append(f"set_tid_size={set_tid_size}")
    into_cgroup = flags & dict(F.CLONE3_FLAGS).get("CLONE_INTO_CGROUP", 1 << 33)
    if size > 80 and (cgroup or into_cgroup):
        parts.append(f"cgroup={cgroup}")
    return "{" + ", ".join(parts) + "}"


def open_how(data: bytes, ctx: Any = None) -> str:
    from .xlat import open_flags

    flags, mode, resolve = struct.unpack_from("<QQQ", data)
    parts = [f"flags={open_flags(flags, 64)}"]
    if flags & (0o100 | 0o20000000) or mode:
        from .xlat import numeric_mode

        parts.append(f"mode={numeric_mode(mode)}")
    parts.append(f"resolve={flag_set(resolve, F.RESOLVE_FLAGS, dflt='RESOLVE_???')}")
    return "{" + ", ".join(parts) + "}"


def sembuf(data: bytes, ctx: Any = None) -> str:
    num, op, flg = struct.unpack("<Hhh", data)
    return f"{{sem_num={num}, sem_op={op}, sem_flg={flag_set(flg & 0xFFFF, F.SEMOP_FLAGS)}}}"


def robust_list_head(data: bytes, ctx: Any = None) -> str:
    head, offset, pending = struct.unpack("<QqQ", data)
    return f"{{list={{next={addr(head)}}}, futex_offset={offset}, list_op_pending={addr(pending)}}}"
