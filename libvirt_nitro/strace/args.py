"""Typed system call arguments: how each kind prints, and when (entry or exit).

An :class:`Arg` pairs a decoder with the moment strace decodes it: input arguments at
entry (``openat``'s path, ``write``'s buffer), output arguments at exit, once the kernel has
written them (``read``'s buffer, ``fstat``'s struct, ``pipe``'s fds). A decoder gets the
:class:`Context` and the raw register and returns a :data:`~.values.Value`; memory it cannot
read gives :class:`~.values.Unreadable` (printed as the address), never an exception.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..linux import flags as F
from ..linux import to_signed64
from .memory import GuestMemory, read, read_cstring, read_s32, read_u64
from .structs import hex_c
from .values import Items, Quoted, Seq, Unreadable, Value
from .xlat import MASK32, flag_set, numeric_mode, open_flags, signal_name, sigset, xval

if TYPE_CHECKING:
    from .decode import DecodeOptions

__all__ = ["Arg", "Context", "Formatter", "PATH_MAX", "s32"]

#: Longest path strace reads (``PATH_MAX``, bytes); paths are not cut at ``-s``.
PATH_MAX = 4096


@dataclass
class Context:
    """What a formatter may look at: guest memory (None: nothing readable), options, the six
    raw argument registers and, at exit, the signed return value."""

    memory: GuestMemory | None
    options: DecodeOptions
    args: tuple[int, ...]
    ret: int | None = None

    @property
    def failed(self) -> bool:
        """The call returned an error (``-4095 <= ret <= -1``)."""
        return self.ret is not None and -4095 <= self.ret <= -1


Formatter = Callable[[Context, int], Value]


@dataclass(frozen=True)
class Arg:
    """One argument: *fmt* decodes the raw register; *at_exit* when the kernel fills it in;
    *label* prefixes it (``child_stack=``)."""

    fmt: Formatter
    at_exit: bool = False
    label: str = ""

    def decode(self, ctx: Context, value: int) -> Value:
        """The decoded value of raw register *value*, label included."""
        decoded = self.fmt(ctx, value)
        if not self.label:
            return decoded
        return self.label + decoded if isinstance(decoded, str) else Seq((self.label, decoded))


def s32(value: int) -> int:
    """The low 32 bits of a register as a C ``int``."""
    value &= MASK32
    return value - (1 << 32) if value >> 31 else value


# -- plain numbers and pointers ------------------------------------------------------------


def hexa(ctx: Context, v: int) -> str:
    """``%#lx``: raw hex, ``0`` for zero."""
    return hex_c(v)


def ptr(ctx: Context, v: int) -> str:
    """An address: ``NULL`` or hex."""
    return "NULL" if v == 0 else hex(v)


def integer(ctx: Context, v: int) -> str:
    """A C ``int`` (fds, pids, signed counts)."""
    return str(s32(v))


def unsigned(ctx: Context, v: int) -> str:
    """A C ``unsigned int``."""
    return str(v & MASK32)


def ulong(ctx: Context, v: int) -> str:
    """A ``size_t``/``unsigned long`` in decimal."""
    return str(v)


def slong(ctx: Context, v: int) -> str:
    """A ``long``/``ssize_t`` in decimal."""
    return str(to_signed64(v))


def dirfd(ctx: Context, v: int) -> str:
    """A directory fd of the *at() calls: ``AT_FDCWD`` or the number."""
    return xval(s32(v), F.AT_SPECIAL) if s32(v) < 0 else str(s32(v))


def mode(ctx: Context, v: int) -> str:
    """A ``mode_t`` in octal: ``0644``."""
    return numeric_mode(v & MASK32)


def signal(ctx: Context, v: int) -> str:
    """A signal number: ``SIGTERM``; 0 as ``0``."""
    return signal_name(s32(v)) if s32(v) else "0"


def flags(table: tuple[tuple[str, int], ...], zero: str = "0", bits: int = 32) -> Formatter:
    """A flag set of *table* (an ``int`` unless *bits* is 64)."""
    mask = MASK32 if bits == 32 else (1 << 64) - 1
    return lambda ctx, v: flag_set(v & mask, table, zero)


def enum(table: tuple[tuple[str, int], ...], unknown: str) -> Formatter:
    """One value of *table*, else ``0x63 /* UNKNOWN */``."""
    return lambda ctx, v: xval(v & MASK32, table, unknown)


def oflags(ctx: Context, v: int) -> str:
    """open(2) flags."""
    return open_flags(v)


# -- memory ------------------------------------------------------------------------------


def path(ctx: Context, v: int) -> Value:
    """A NUL-terminated path, whole (up to ``PATH_MAX``)."""
    got = read_cstring(ctx.memory, v, PATH_MAX)
    return Unreadable(v) if got is None else Quoted(got[0], cut=got[1], whole=True)


def cstring(ctx: Context, v: int) -> Value:
    """A NUL-terminated string, read up to the capture budget (printed up to ``-s``)."""
    got = read_cstring(ctx.memory, v, ctx.options.capture_bytes)
    return Unreadable(v) if got is None else Quoted(got[0], cut=got[1])


def _buffer(ctx: Context, v: int, length: int, hexed: bool = False) -> Value:
    taken = min(length, ctx.options.capture_bytes)
    data = read(ctx.memory, v, taken) if taken else (b"" if v and ctx.memory else None)
    if data is None:
        return Unreadable(v)
    return Quoted(data, size=length, hexed=hexed)


def buffer_in(length_arg: int) -> Formatter:
    """A buffer the call reads (``write``): *length_arg* is the index of its size argument."""
    return lambda ctx, v: _buffer(ctx, v, ctx.args[length_arg])


def buffer_out(ctx: Context, v: int) -> Value:
    """A buffer the call filled (``read``): as many bytes as it returned; the address on
    error."""
    if ctx.ret is None or ctx.ret < 0:
        return ptr(ctx, v)
    return _buffer(ctx, v, ctx.ret)


def buffer_out_hex(ctx: Context, v: int) -> Value:
    """A filled buffer in ``\\xNN`` form (getrandom)."""
    if ctx.ret is None or ctx.ret < 0:
        return ptr(ctx, v)
    return _buffer(ctx, v, ctx.ret, hexed=True)


def struct_at(decoder: Callable[[bytes], str], size: int, only_on_success: bool = True):
    """A struct pointer: read *size* bytes and decode; the address when unreadable (or, with
    *only_on_success*, when the call failed)."""

    def fmt(ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        if only_on_success and ctx.failed:
            return hex(v)
        data = read(ctx.memory, v, size)
        return Unreadable(v) if data is None else decoder(data)

    return fmt


def int_out(ctx: Context, v: int) -> Value:
    """An ``int`` the kernel wrote: ``[5]``."""
    if v == 0:
        return "NULL"
    if ctx.failed:
        return hex(v)
    value = read_s32(ctx.memory, v)
    return Unreadable(v) if value is None else f"[{value}]"


def ulong_out(ctx: Context, v: int) -> Value:
    """An ``unsigned long`` the kernel wrote, in hex: ``[0x7f1234]``."""
    if ctx.failed:
        return ptr(ctx, v)
    value = read_u64(ctx.memory, v)
    return Unreadable(v) if value is None else f"[{hex_c(value)}]"


def fd_pair(ctx: Context, v: int) -> Value:
    """``int[2]`` of pipe(2): ``[3, 4]``."""
    if ctx.failed:
        return ptr(ctx, v)
    data = read(ctx.memory, v, 8)
    return Unreadable(v) if data is None else "[{}, {}]".format(*struct.unpack("<ii", data))


def sigset_ptr(size_arg: int) -> Formatter:
    """A ``sigset_t *`` whose size is argument *size_arg*."""

    def fmt(ctx: Context, v: int) -> Value:
        size = ctx.args[size_arg]
        if v == 0:
            return "NULL"
        if ctx.failed or not 0 < size <= 128:
            return hex(v)
        data = read(ctx.memory, v, size)
        return Unreadable(v) if data is None else sigset(data)

    return fmt


def string_array(ctx: Context, v: int) -> Value:
    """``argv``: ``["ls", "-l"]``, read up to the capture budget of elements (printed up to
    ``-s`` elements, then ``...``)."""
    if v == 0:
        return "NULL"
    items: list[Value] = []
    budget = ctx.options.capture_bytes
    for i in range(budget + 1):
        p = read_u64(ctx.memory, v + 8 * i)
        if p is None:
            return Unreadable(v) if not items else Items(tuple(items), more=True)
        if p == 0:
            return Items(tuple(items))
        if i == budget:
            return Items(tuple(items), more=True)
        items.append(cstring(ctx, p))
    return Items(tuple(items))


def string_array_count(ctx: Context, v: int) -> Value:
    """``envp`` the way strace prints it without ``-v``: ``0x7ffd... /* 12 vars */``."""
    if v == 0:
        return "NULL"
    for count in range(1 << 16):
        p = read_u64(ctx.memory, v + 8 * count)
        if p is None:
            return Unreadable(v)
        if p == 0:
            return f"{hex(v)} /* {count} var{'s' if count != 1 else ''} */"
    return hex(v)
