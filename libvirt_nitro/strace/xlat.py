"""Numbers to strace's symbolic text: flag sets, enumerations, signals, modes.

Tables come from :mod:`libvirt_nitro.linux.flags` (generated from the UAPI headers); each is
an ordered tuple of ``(name, value)`` and the order is strace's print order.
"""

from __future__ import annotations

from ..linux import flags as F

__all__ = [
    "MASK32",
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
#: x86 ``_NSIG`` (kernel-internal; the UAPI header only gives old userspace's 32).
NSIG = 64
_SIGRTMIN = dict(F.SIGNAL_CONSTANTS)["SIGRTMIN"]
_SIGNAL_NAMES = {value: name for name, value in F.SIGNALS}


def value_of(table: tuple[tuple[str, int], ...], name: str) -> int:
    """Value of *name* in *table* (a generated tuple of pairs)."""
    return dict(table)[name]


def flag_set(value: int, table: tuple[tuple[str, int], ...], zero: str = "0") -> str:
    """*value* as ``NAME|NAME|0x...``: the names of *table* whose bits are all set, in
    table order, then the unknown remainder in hex; *zero* when *value* is 0."""
    if value == 0:
        return zero
    names = []
    rest = value
    for name, bits in table:
        if bits and rest & bits == bits:
            names.append(name)
            rest &= ~bits
    if rest:
        names.append(hex(rest))
    return "|".join(names)


def xval(value: int, table: tuple[tuple[str, int], ...], unknown: str | None = None) -> str:
    """The name of *value* in *table*, else ``0x63 /* UNKNOWN */`` (strace's ``printxval``);
    with *unknown* None just the hex number."""
    for name, v in table:
        if v == value:
            return name
    text = hex(value) if value >= 0 else str(value)
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


def sigset(data: bytes) -> str:
    """A ``sigset_t`` (bit *n-1* = signal *n*) as ``[HUP CHLD]``; more than half the
    signals set prints the complement, ``~[RTMIN RT_1]``, as strace does."""
    bits = int.from_bytes(data, "little")
    nbits = len(data) * 8
    prefix = ""
    if bin(bits).count("1") * 2 > nbits:
        prefix = "~"
        bits = ~bits & ((1 << nbits) - 1)
    names = [signal_name(n + 1).removeprefix("SIG") for n in range(nbits) if bits >> n & 1]
    return prefix + "[" + " ".join(names) + "]"


_S_IFMT = dict(F.MODE_CONSTANTS)["S_IFMT"]


def numeric_mode(mode: int) -> str:
    """Permission bits in octal with a leading 0, as strace prints modes: ``0644``, ``01777``."""
    return f"0{mode:02o}" if mode else "000"


def file_mode(mode: int) -> str:
    """A ``st_mode``: ``S_IFREG|0644``, ``S_IFDIR|S_ISVTX|0777``."""
    parts = []
    kind = mode & _S_IFMT
    if kind:
        parts.append(xval(kind, F.FILE_TYPES))
    for name, bit in F.MODE_FLAGS:
        if mode & bit:
            parts.append(name)
    parts.append(numeric_mode(mode & 0o777))
    return "|".join(parts)


_O_ACCMODE = value_of(F.OPEN_ACCESS, "O_ACCMODE")


def open_flags(value: int) -> str:
    """open(2) flags: the access mode first (``O_RDONLY``), then the flags, as strace."""
    value &= MASK32
    access = xval(value & _O_ACCMODE, F.OPEN_ACCESS)
    rest = value & ~_O_ACCMODE
    return access if not rest else f"{access}|{flag_set(rest, F.OPEN_FLAGS)}"
