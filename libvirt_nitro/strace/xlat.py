"""Numbers to strace's symbolic text: flag sets, enumerations, signals, modes.

Tables come from :mod:`libvirt_nitro.linux.flags` (generated from the UAPI headers); each is
an ordered tuple of ``(name, value)`` and the order is strace's print order.

strace's rules (``printflags``/``printxval`` of its ``xlat.c``): a flag set prints the names
whose bits are all set, in table order, then the remaining bits in hex
(``PROT_READ|0x100``); a value with no known bit prints as hex with the table's default
comment (``0x1 /* O_??? */``); zero prints the table's zero name if it has one, else ``0``.
An enumeration prints its name, or the number with the default comment
(``0x63 /* F_??? */``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..linux import flags as F

__all__ = [
    "MASK32",
    "MASK64",
    "NSIG",
    "flag_set",
    "xval",
    "signal_name",
    "sigset",
    "file_mode",
    "numeric_mode",
    "open_flags",
    "value_of",
]

MASK32 = 0xFFFF_FFFF
MASK64 = (1 << 64) - 1
#: x86 ``_NSIG`` (kernel-internal; the UAPI header only gives old userspace's 32).
NSIG = 64
_SIGRTMIN = dict(F.SIGNAL_CONSTANTS)["SIGRTMIN"]
_SIGNAL_NAMES = {value: name for name, value in F.SIGNALS}


def value_of(table: tuple[tuple[str, int], ...], name: str) -> int:
    """Value of *name* in *table* (a generated tuple of pairs)."""
    return dict(table)[name]


#: Texts of :func:`flag_set` and :func:`xval` already made: the same flags, commands and
#: modes recur call after call. Keyed by the table's id, the table kept with the text (so
#: that its id cannot be reused while cached); emptied when it grows past
#: :data:`_MEMO_MAX`.
_MEMO: dict[tuple, tuple[Any, str]] = {}
_MEMO_MAX = 1 << 16


def _memoised(
    fn: Callable[[int, Any, Any, Any], str], value: int, table: Any, a: Any, b: Any
) -> str:
    """``fn(value, table, a, b)``, made once per distinct arguments."""
    key = (fn, value, id(table), a, b)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is table:
        return hit[1]
    text = fn(value, table, a, b)
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = (table, text)
    return text


def flag_set(
    value: int, table: tuple[tuple[str, int], ...], zero: str = "0", dflt: str | None = None
) -> str:
    """*value* as ``NAME|NAME|0x...``: the names of *table* whose bits are all set, in
    table order, then the unknown remainder in hex. Zero prints the table's zero-valued name
    if it has one, else *zero*. When no name matches, the hex number is followed by the
    comment *dflt* (``0x1 /* O_??? */``), as strace's ``printflags``."""
    return _memoised(_flag_set, value, table, zero, dflt)


def _flag_set(value: int, table: tuple[tuple[str, int], ...], zero: str, dflt: str | None) -> str:
    if value == 0:
        for name, bits in table:
            if bits == 0:
                return name
        return zero
    names = []
    rest = value
    for name, bits in table:
        if bits and rest & bits == bits:
            names.append(name)
            rest &= ~bits
            if not rest:
                break
    if not names:
        return f"{value:#x} /* {dflt} */" if dflt else hex(value)
    if rest:
        names.append(hex(rest))
    return "|".join(names)


def xval(
    value: int, table: tuple[tuple[str, int], ...], unknown: str | None = None, fmt: str = "x"
) -> str:
    """The name of *value* in *table*, else the number (``fmt``: ``x`` hex, ``d`` signed,
    ``u`` unsigned) followed by the comment *unknown* (``0x63 /* F_??? */``), as strace's
    ``printxval``."""
    return _memoised(_xval, value, table, unknown, fmt)


def _xval(value: int, table: tuple[tuple[str, int], ...], unknown: str | None, fmt: str) -> str:
    for name, v in table:
        if v == value:
            return name
    if fmt == "x":
        text = f"{value:#x}" if value >= 0 else str(value)
        if value == 0:
            text = "0"
    else:
        text = str(value)
    return f"{text} /* {unknown} */" if unknown else text


def signal_name(sig: int) -> str:
    """``SIGCHLD``, ``SIGRTMIN``, ``SIGRT_2``; a number out of range in decimal."""
    if sig in _SIGNAL_NAMES:
        return _SIGNAL_NAMES[sig]
    if sig == _SIGRTMIN:
        return "SIGRTMIN"
    if _SIGRTMIN < sig <= NSIG:
        return f"SIGRT_{sig - _SIGRTMIN}"
    return str(sig)


def signal_abbrev(sig: int) -> str:
    """A signal as a member of a set: ``HUP``, ``RTMIN``, ``RT_2``; out of range: empty."""
    if sig in _SIGNAL_NAMES:
        return _SIGNAL_NAMES[sig][3:]
    if sig == _SIGRTMIN:
        return "RTMIN"
    if _SIGRTMIN < sig <= NSIG:
        return f"RT_{sig - _SIGRTMIN}"
    return ""


def sigset(data: bytes) -> str:
    """A ``sigset_t`` (bit *n-1* = signal *n*) as ``[HUP CHLD]``; two thirds of the
    signals or more set print the complement, ``~[RTMIN RT_1]``, as strace does."""
    size = (min(len(data), NSIG // 8) + 3) // 4  # in 32-bit words
    raw = data[: size * 4].ljust(size * 4, b"\0")
    bits = int.from_bytes(raw, "little")
    nbits = size * 32
    prefix = ""
    if bin(bits).count("1") >= nbits * 2 // 3:
        prefix = "~"
        bits = ~bits & ((1 << nbits) - 1)
    names = [signal_abbrev(n + 1) for n in range(nbits) if bits >> n & 1]
    return prefix + "[" + " ".join(name for name in names if name) + "]"


_S_IFMT = dict(F.MODE_CONSTANTS)["S_IFMT"]


def numeric_mode(mode: int) -> str:
    """Permission bits in octal as C's ``%#03o`` (strace's modes): ``0644``, ``01777``,
    ``004``, ``000``."""
    return f"0{mode:o}".rjust(3, "0") if mode else "000"


def file_mode(mode: int) -> str:
    """A ``st_mode``: ``S_IFREG|0644``, ``S_IFDIR|S_ISVTX|0777``; an unknown file type
    prints the whole mode in octal (``0170644``)."""
    parts = []
    kind = mode & _S_IFMT
    if kind:
        name = xval(kind, F.FILE_TYPES)
        if name.startswith("0"):
            return numeric_mode(mode)
        parts.append(name)
    for name, bit in F.MODE_FLAGS:
        if mode & bit:
            parts.append(name)
    parts.append(numeric_mode(mode & ~(_S_IFMT | 0o7000)))
    return "|".join(parts)


_O_ACCMODE = value_of(F.OPEN_ACCESS, "O_ACCMODE")


def open_flags(value: int, bits: int = 32) -> str:
    """open(2) flags: the access mode first (``O_RDONLY``), then the flags, as strace (of
    *bits* bits: openat2's are 64)."""
    value &= (1 << bits) - 1
    access = xval(value & _O_ACCMODE, F.OPEN_ACCESS)
    rest = value & ~_O_ACCMODE
    return access if not rest else f"{access}|{flag_set(rest, F.OPEN_FLAGS)}"
