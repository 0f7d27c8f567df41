"""Guest structs (x86-64 layouts) in strace's default, abbreviated text.

Each function takes the raw bytes of the struct (read by the caller) and returns its text;
sizes are in :data:`SIZES`. Layouts are the x86-64 kernel ABI: ``struct stat`` of
``asm/stat.h``, ``struct new_utsname``, ``struct __kernel_timespec``, the kernel's
``struct sigaction`` (handler, flags, restorer, mask), ``struct rlimit64``, ``struct pollfd``,
``struct sockaddr_*``.
"""

from __future__ import annotations

import ipaddress
import struct

from ..linux import flags as F
from .quote import quote
from .xlat import file_mode, flag_set, signal_name, sigset, value_of, xval

__all__ = [
    "SIZES",
    "stat",
    "utsname",
    "timespec",
    "timeval",
    "kernel_sigaction",
    "rlimit64",
    "pollfds",
    "sockaddr",
    "wait_status",
    "dirent64_count",
    "fd_set",
    "hex_c",
]

NUL = b"\0"

SIZES = {
    "stat": 144,
    "utsname": 6 * 65,
    "timespec": 16,
    "timeval": 16,
    "sigaction": 32,
    "rlimit64": 16,
    "pollfd": 8,
}


def stat(data: bytes) -> str:
    """``struct stat`` as ``{st_mode=S_IFREG|0644, st_size=1274, ...}``; device files give
    ``st_rdev=makedev(0x1, 0x3)`` instead of the size."""
    (mode,) = struct.unpack_from("<I", data, 24)
    (rdev,) = struct.unpack_from("<Q", data, 40)
    (size,) = struct.unpack_from("<q", data, 48)
    kind = mode & value_of(F.MODE_CONSTANTS, "S_IFMT")
    if kind in (value_of(F.FILE_TYPES, "S_IFCHR"), value_of(F.FILE_TYPES, "S_IFBLK")):
        # new_decode_dev(): major in bits 8-19, minor in 0-7 and 20-31.
        major = (rdev >> 8) & 0xFFF
        minor = (rdev & 0xFF) | ((rdev >> 12) & 0xFFF00)
        detail = f"st_rdev=makedev({hex_c(major)}, {hex_c(minor)})"
    else:
        detail = f"st_size={size}"
    return f"{{st_mode={file_mode(mode)}, {detail}, ...}}"


def utsname(data: bytes) -> str:
    """``struct new_utsname`` as ``{sysname="Linux", nodename="web01", ...}``."""
    fields = [data[i * 65 : (i + 1) * 65].split(b"\0", 1)[0] for i in range(2)]
    return f"{{sysname={quote(fields[0])}, nodename={quote(fields[1])}, ...}}"


def timespec(data: bytes) -> str:
    """``struct __kernel_timespec`` as ``{tv_sec=0, tv_nsec=1000}``."""
    sec, nsec = struct.unpack("<qq", data)
    return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def timeval(data: bytes) -> str:
    """``struct __kernel_old_timeval`` as ``{tv_sec=0, tv_usec=5}``."""
    sec, usec = struct.unpack("<qq", data)
    return f"{{tv_sec={sec}, tv_usec={usec}}}"


_SA_RESTORER = value_of(F.SIGACTION_FLAGS, "SA_RESTORER")


def kernel_sigaction(data: bytes) -> str:
    """The kernel's ``struct sigaction`` (x86-64: handler, flags, restorer, mask) as
    ``{sa_handler=SIG_IGN, sa_mask=[HUP], sa_flags=SA_RESTORER|SA_RESTART, sa_restorer=0x...}``
    (``sa_restorer`` only with ``SA_RESTORER``, as strace)."""
    handler, flags, restorer = struct.unpack_from("<QQQ", data)
    handler_text = xval(_signed64(handler), F.SIGNAL_HANDLERS)
    if handler_text.startswith("0x") or handler_text.startswith("-"):
        handler_text = hex(handler)
    text = (
        f"{{sa_handler={handler_text}, sa_mask={sigset(data[24:32])}, "
        f"sa_flags={flag_set(flags, F.SIGACTION_FLAGS)}"
    )
    if flags & _SA_RESTORER:
        text += f", sa_restorer={hex(restorer) if restorer else 'NULL'}"
    return text + "}"


def hex_c(value: int) -> str:
    """*value* as C's ``%#x``: ``0x1f``, but ``0`` for zero."""
    return hex(value) if value else "0"


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _rlim(value: int) -> str:
    if value == (1 << 64) - 1:
        return "RLIM64_INFINITY"
    if value > 1024 and value % 1024 == 0:
        return f"{value // 1024}*1024"
    return str(value)


def rlimit64(data: bytes) -> str:
    """``struct rlimit64`` as ``{rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}``."""
    cur, maximum = struct.unpack("<QQ", data)
    return f"{{rlim_cur={_rlim(cur)}, rlim_max={_rlim(maximum)}}}"


def pollfds(data: bytes, field: str = "events", skip_zero: bool = False) -> str:
    """An array of ``struct pollfd`` as ``[{fd=0, events=POLLIN}]``; with
    ``field="revents"`` and *skip_zero* only the entries with events (the exit form)."""
    items = []
    for i in range(0, len(data), 8):
        fd, events, revents = struct.unpack_from("<ihh", data, i)
        value = (events if field == "events" else revents) & 0xFFFF
        if skip_zero and not value:
            continue
        items.append(f"{{fd={fd}, {field}={flag_set(value, F.POLL_EVENTS)}}}")
    return "[" + ", ".join(items) + "]"


def sockaddr(data: bytes) -> str:
    """A ``struct sockaddr`` of *len(data)* bytes: ``{sa_family=AF_INET, sin_port=htons(80),
    sin_addr=inet_addr("127.0.0.1")}``, ``{sa_family=AF_UNIX, sun_path="/run/x"}``..."""
    if len(data) < 2:
        return "{}"
    (family,) = struct.unpack_from("<H", data)
    head = f"sa_family={xval(family, F.ADDRESS_FAMILIES, 'AF_???')}"
    if family == value_of(F.ADDRESS_FAMILIES, "AF_INET") and len(data) >= 8:
        (port,) = struct.unpack_from(">H", data, 2)
        addr = ipaddress.IPv4Address(data[4:8])
        return f'{{{head}, sin_port=htons({port}), sin_addr=inet_addr("{addr}")}}'
    if family == value_of(F.ADDRESS_FAMILIES, "AF_INET6") and len(data) >= 24:
        port, flow = struct.unpack_from(">HI", data, 2)
        addr = ipaddress.IPv6Address(data[8:24])
        scope = struct.unpack_from("<I", data, 24)[0] if len(data) >= 28 else 0
        return (
            f"{{{head}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), "
            f'inet_pton(AF_INET6, "{addr}", &sin6_addr), sin6_scope_id={scope}}}'
        )
    if family == value_of(F.ADDRESS_FAMILIES, "AF_UNIX"):
        path = data[2:]
        if not path:
            return f"{{{head}}}"
        if path[0] == 0:  # abstract socket
            return f"{{{head}, sun_path=@{quote(path[1:].rstrip(NUL))}}}"
        return f"{{{head}, sun_path={quote(path.split(NUL, 1)[0])}}}"
    return f"{{{head}, sa_data={quote(data[2:])}}}"


def wait_status(status: int) -> str:
    """A wait status as strace: ``[{WIFEXITED(s) && WEXITSTATUS(s) == 7}]``."""
    status &= 0xFFFF_FFFF
    low = status & 0x7F
    if low == 0:
        text = f"WIFEXITED(s) && WEXITSTATUS(s) == {(status >> 8) & 0xFF}"
    elif status & 0xFF == 0x7F:
        text = f"WIFSTOPPED(s) && WSTOPSIG(s) == {signal_name((status >> 8) & 0xFF)}"
    elif status == 0xFFFF:
        text = "WIFCONTINUED(s)"
    else:
        text = f"WIFSIGNALED(s) && WTERMSIG(s) == {signal_name(low)}"
        if status & 0x80:
            text += " && WCOREDUMP(s)"
    extra = status >> 16
    if extra:
        return f"[{{{text}}} | {extra:#x}<<16]"
    return f"[{{{text}}}]"


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


def fd_set(data: bytes, nfds: int) -> str:
    """An ``fd_set`` of *nfds* descriptors as ``[0 3]``."""
    bits = int.from_bytes(data, "little")
    return "[" + " ".join(str(fd) for fd in range(nfds) if bits >> fd & 1) + "]"
