"""Argument kinds: how each system call argument prints, when, and what memory it reads.

A signature (:mod:`.signatures`) is a tuple of kinds, one per argument register. A kind
is declarative: its class says how the register prints (``Int``, ``Flags``, ``Path``,
``Buf``...), its :attr:`Kind.when` says whether strace prints it at the entry (what the call
reads: ``openat``'s path, ``write``'s buffer) or at the exit (what the kernel wrote:
``read``'s buffer, ``fstat``'s struct), and :meth:`Kind.footprint` says which guest memory it
reads (a string up to N bytes, a fixed-size struct, a buffer sized by another argument or
by the return value) so that a capture recipe can be derived from the table without running
any decoder.

A kind's :meth:`Kind.decode` gets the :class:`Context` and the raw register and returns a
:data:`~.values.Value`; memory it cannot read gives :class:`~.values.Unreadable` (printed as
the address), never an exception.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .memory import GuestMemory, read, read_cstring, read_u64
from .structs import hex_c
from .values import Items, Quoted, Seq, Unreadable, Value
from .xlat import MASK32, flag_set, numeric_mode, open_flags, signal_name, sigset, xval

if TYPE_CHECKING:
    from .decode import DecodeOptions

__all__ = [
    "ENTRY",
    "EXIT",
    "PATH_MAX",
    "Context",
    "Footprint",
    "Kind",
    "s32",
    "read_cstr",
]

#: strace prints the argument when the call enters / when it returns.
ENTRY, EXIT = "entry", "exit"

#: Longest path strace prints (``PATH_MAX - 1`` bytes); paths are not cut at ``-s``.
PATH_MAX = 4096


@dataclass
class Context:
    """What a decoder may look at: guest memory (None: nothing readable), options, the six
    raw argument registers, at exit the signed return value, the user stack pointer at the
    entry (None: unknown), and what entry decoders saved for the exit (by argument index).
    """

    memory: GuestMemory | None
    options: DecodeOptions
    args: tuple[int, ...]
    ret: int | None = None
    sp: int | None = None
    saved: dict[int, Any] = field(default_factory=dict)
    index: int = 0

    @property
    def failed(self) -> bool:
        """The call returned an error (``-4095 <= ret <= -1``)."""
        return self.ret is not None and -4095 <= self.ret <= -1

    @property
    def exiting(self) -> bool:
        """Decoding at the exit (the return value is known)."""
        return self.ret is not None

    def arg(self, index: int) -> int:
        """Raw register of argument *index*."""
        return self.args[index]


@dataclass(frozen=True)
class Footprint:
    """The guest memory an argument points at, as a capture recipe needs it.

    :ivar when: ``"entry"``, ``"exit"`` or ``"both"`` (read at entry, printed at exit)
    :ivar shape: ``"string"`` (NUL-terminated, at most ``size`` bytes; ``size`` 0: the
        capture budget), ``"bytes"`` (``size`` bytes, or as many as ``count_arg``/
        ``count_ret`` say times ``size``), ``"array"`` (elements of ``size`` bytes, their
        number from ``count_arg``/``count_ret`` or ``count``), each element possibly
        followed further (``follows``)
    :ivar count_arg: the argument register giving the length/element count
    :ivar count_ret: the return value gives the length/element count
    :ivar count: a fixed element count
    :ivar capped: at most the capture budget of bytes (or elements)
    :ivar follows: what each element points to (``"string"``, ``"bytes"``), for arrays of
        pointers (``argv``, ``iovec``)
    :ivar count_shift: the count is ``count_arg``'s value rounded up and shifted right by
        this (``select``'s ``nfds`` bits in 64-bit words: 6)
    :ivar terminated: an array of pointers that ends at its first NULL (``argv``,
        ``envp``), at most ``count`` (capped: the capture budget) of them
    """

    when: str
    shape: str
    size: int = 0
    count_arg: int | None = None
    count_ret: bool = False
    count: int | None = None
    capped: bool = False
    follows: str | None = None
    count_shift: int = 0
    terminated: bool = False


class Kind:
    """One argument: how it prints, when, and the memory it reads (none by default)."""

    when: str = ENTRY

    def decode(self, ctx: Context, v: int) -> Value:  # pragma: no cover - abstract
        raise NotImplementedError

    def footprint(self) -> Footprint | None:
        """The memory this argument reads; None: the register alone."""
        return None

    def save(self, ctx: Context, v: int) -> Any:
        """At entry, for an argument printed at exit: what the exit needs of the entry's
        memory (an in/out length); None: nothing."""
        return None

    @property
    def saves(self) -> bool:
        return type(self).save is not Kind.save


def s32(value: int) -> int:
    """The low 32 bits of a register as a C ``int``."""
    value &= MASK32
    return value - (1 << 32) if value >> 31 else value


def read_cstr(memory: GuestMemory | None, address: int, n: int) -> tuple[bytes, bool] | None:
    """The C string at *address*: ``(at most n bytes, cut)``, *cut* when none of the *n*
    bytes is its NUL (and the byte after them is not one either); None when unreadable."""
    got = read_cstring(memory, address, n + 1)
    if got is None:
        return None
    data = got[0]
    if len(data) > n:
        return data[:n], True
    return data, False


def addr(v: int) -> str:
    """strace's ``printaddr``: ``NULL`` or hex."""
    return "NULL" if v == 0 else hex(v)


# -- numbers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num(Kind):
    """A number of the register: *fmt* ``d`` (signed), ``u`` (unsigned) or ``x`` (hex,
    ``%#x``), of *bits* bits (``int`` 32, ``long`` 64)."""

    fmt: str = "d"
    bits: int = 32

    def decode(self, ctx: Context, v: int) -> Value:
        v &= (1 << self.bits) - 1
        if self.fmt == "d":
            return str(v - (1 << self.bits) if v >> (self.bits - 1) else v)
        if self.fmt == "u":
            return str(v)
        if self.fmt == "o":
            return numeric_mode(v)
        return hex_c(v)


@dataclass(frozen=True)
class Id(Kind):
    """A uid/gid: unsigned, but ``-1`` for the all-ones value (strace's ``printuid``)."""

    bits: int = 32

    def decode(self, ctx: Context, v: int) -> Value:
        v &= (1 << self.bits) - 1
        return "-1" if v == (1 << self.bits) - 1 else str(v)


@dataclass(frozen=True)
class DirFd(Kind):
    """A directory fd of the *at() calls: ``AT_FDCWD`` or the number."""

    def decode(self, ctx: Context, v: int) -> Value:
        fd = s32(v)
        return "AT_FDCWD" if fd == -100 else str(fd)


@dataclass(frozen=True)
class Ptr(Kind):
    """An address printed as such: ``NULL`` or hex (memory not read)."""

    def decode(self, ctx: Context, v: int) -> Value:
        return addr(v)


@dataclass(frozen=True)
class Flags(Kind):
    """A flag set of *table*: ``O_CLOEXEC|0x40``, ``0x1 /* O_??? */``; of *bits* bits."""

    table: tuple[tuple[str, int], ...]
    dflt: str | None = None
    bits: int = 32
    zero: str = "0"

    def decode(self, ctx: Context, v: int) -> Value:
        return flag_set(v & ((1 << self.bits) - 1), self.table, self.zero, self.dflt)


@dataclass(frozen=True)
class Enum(Kind):
    """One value of *table*, else the number with the comment *dflt* (``0x63 /* F_??? */``);
    *fmt* the number's format (``x``, ``d``, ``u``), of *bits* bits."""

    table: tuple[tuple[str, int], ...]
    dflt: str | None = None
    bits: int = 32
    fmt: str = "x"

    def decode(self, ctx: Context, v: int) -> Value:
        v &= (1 << self.bits) - 1
        if self.fmt == "d" and v >> (self.bits - 1):
            v -= 1 << self.bits
        return xval(v, self.table, self.dflt, self.fmt)


@dataclass(frozen=True)
class Signal(Kind):
    """A signal number: ``SIGTERM``; ``0`` and out-of-range numbers in decimal."""

    def decode(self, ctx: Context, v: int) -> Value:
        sig = s32(v)
        return signal_name(sig) if sig > 0 else str(sig)


@dataclass(frozen=True)
class OpenFlags(Kind):
    """open(2) flags: ``O_RDONLY|O_CLOEXEC``."""

    def decode(self, ctx: Context, v: int) -> Value:
        return open_flags(v)


@dataclass(frozen=True)
class Fn(Kind):
    """A register printed by strace's own logic for this call (no memory read):
    *fn(ctx, v)* gives the text."""

    fn: Callable[[Context, int], Value]
    when: str = ENTRY

    def decode(self, ctx: Context, v: int) -> Value:
        return self.fn(ctx, v)


@dataclass(frozen=True)
class Label(Kind):
    """*kind*, printed after *label* (``child_stack=``)."""

    label: str
    kind: Kind

    @property
    def when(self) -> str:  # type: ignore[override]
        return self.kind.when

    def decode(self, ctx: Context, v: int) -> Value:
        decoded = self.kind.decode(ctx, v)
        return self.label + decoded if isinstance(decoded, str) else Seq((self.label, decoded))

    def footprint(self) -> Footprint | None:
        return self.kind.footprint()

    def save(self, ctx: Context, v: int) -> Any:
        return self.kind.save(ctx, v)

    @property
    def saves(self) -> bool:
        return self.kind.saves


@dataclass(frozen=True)
class At(Kind):
    """*kind* applied to register *index* instead of its own (strace prints ``clone``'s
    stack before its flags)."""

    index: int
    kind: Kind

    @property
    def when(self) -> str:  # type: ignore[override]
        return self.kind.when

    def decode(self, ctx: Context, v: int) -> Value:
        return self.kind.decode(ctx, ctx.args[self.index])

    def footprint(self) -> Footprint | None:
        return self.kind.footprint()

    def save(self, ctx: Context, v: int) -> Any:
        return self.kind.save(ctx, ctx.args[self.index])

    @property
    def saves(self) -> bool:
        return self.kind.saves


@dataclass(frozen=True)
class Exit(Kind):
    """*kind* printed at the exit, as strace does after an output argument (``readv``'s
    count; io_getevents' timeout, read then): the entry line stops before it."""

    kind: Kind
    when: str = EXIT

    def decode(self, ctx: Context, v: int) -> Value:
        return self.kind.decode(ctx, v)

    def footprint(self) -> Footprint | None:
        inner = self.kind.footprint()
        return None if inner is None else replace(inner, when=EXIT)


# -- memory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path(Kind):
    """A NUL-terminated path, whole (up to ``PATH_MAX - 1`` bytes, then ``...``)."""

    when: str = ENTRY

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        got = read_cstr(ctx.memory, v, PATH_MAX - 1)
        return Unreadable(v) if got is None else Quoted(got[0], cut=got[1], whole=True)

    def footprint(self) -> Footprint:
        return Footprint(self.when, "string", PATH_MAX)


@dataclass(frozen=True)
class CStr(Kind):
    """A NUL-terminated string printed up to ``-s`` (read up to the capture budget); with
    *max_len* a string in a buffer of that many bytes (``...`` when its NUL is not in
    it)."""

    max_len: int | None = None
    when: str = ENTRY

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        if self.when == EXIT and ctx.failed:
            return addr(v)
        # strace reads -s + 1 bytes (or the buffer's length): a string of -s bytes whose NUL
        # is not readable prints as its address, as strace prints it.
        limit = ctx.options.capture_bytes + 1
        if self.max_len is not None:
            limit = min(limit, self.max_len)
        got = read_cstring(ctx.memory, v, limit)
        if got is None:
            return Unreadable(v)
        return Quoted(got[0], cut=got[1], max_len=self.max_len)

    def footprint(self) -> Footprint:
        return Footprint(self.when, "string", self.max_len or 0, capped=True)


#: Where a buffer's length comes from: an argument's index, or :data:`RET`.
RET = -1


@dataclass(frozen=True)
class Buf(Kind):
    """A buffer of bytes printed as a quoted string cut at ``-s``: its length is argument
    *size* (or the return value, :data:`RET`). At exit (*when*) a failed call prints the
    address. *hexed*: every byte as ``\\xNN``; *cap*: at most argument *cap* bytes."""

    size: int = RET
    when: str = ENTRY
    hexed: bool = False
    size_bits: int = 64
    cap: int | None = None

    def length(self, ctx: Context) -> int:
        if self.size == RET:
            length = max(ctx.ret or 0, 0)
        else:
            length = ctx.args[self.size] & ((1 << self.size_bits) - 1)
        if self.cap is not None:  # no more than argument *cap* says (recv's MSG_TRUNC)
            length = min(length, ctx.args[self.cap])
        return length

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        if self.when == EXIT and ctx.failed:
            return addr(v)
        return buffer(ctx, v, self.length(ctx), self.hexed)

    def footprint(self) -> Footprint:
        if self.size == RET:
            return Footprint(self.when, "bytes", 1, count_ret=True, capped=True)
        return Footprint(self.when, "bytes", 1, count_arg=self.size, capped=True)


def buffer(ctx: Context, v: int, length: int, hexed: bool = False) -> Value:
    """*length* bytes at *v* as a :class:`Quoted` (read up to the capture budget, and one
    byte more as strace: a buffer whose bytes beyond ``-s`` are unreadable prints as its
    address)."""
    if v == 0:
        return "NULL"
    taken = min(length, ctx.options.capture_bytes + 1)
    data = read(ctx.memory, v, taken) if taken else (b"" if ctx.memory else None)
    if data is None:
        return Unreadable(v)
    return Quoted(data, size=length, hexed=hexed)


#: A struct decoder: the struct's bytes and the context to its text or value.
StructDecoder = Callable[[bytes, Context], Value]


@dataclass(frozen=True)
class Struct(Kind):
    """A pointer to a fixed-size struct of *size* bytes decoded by *fn* (strace's
    ``umove_or_printaddr``): ``NULL``, the address when unreadable or (printed at exit) when
    the call failed, else the decoded struct. *ignore_error*: decoded at exit even after a
    failure (``umove_or_printaddr_ignore_syserror``)."""

    fn: StructDecoder
    size: int
    when: str = ENTRY
    ignore_error: bool = False

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        if self.when == EXIT and ctx.failed and not self.ignore_error:
            return hex(v)
        data = read(ctx.memory, v, self.size)
        return Unreadable(v) if data is None else self.fn(data, ctx)

    def footprint(self) -> Footprint:
        return Footprint(self.when, "bytes", self.size)


def int_value(fmt: str = "d") -> StructDecoder:
    """Decoder of a pointed-to integer: ``[5]`` (fmt ``d``/``u``/``x`` on 32 bits, ``D``/
    ``U``/``X`` on 64 bits)."""
    spec = {"d": "<i", "u": "<I", "x": "<I", "D": "<q", "U": "<Q", "X": "<Q"}[fmt]

    def fn(data: bytes, ctx: Context) -> Value:
        (value,) = struct.unpack(spec, data)
        return f"[{hex_c(value) if fmt in 'xX' else value}]"

    return fn


def IntP(fmt: str = "d", when: str = ENTRY, ignore_error: bool = False) -> Struct:
    """A pointer to an ``int`` (``[5]``); *fmt* as :func:`int_value`."""
    size = 8 if fmt in "DUX" else 4
    return Struct(int_value(fmt), size, when, ignore_error)


@dataclass(frozen=True)
class Array(Kind):
    """A pointer to an array of *elem_size*-byte elements each decoded by *fn*: ``[a,
    b]`` (strace's ``print_array``: cut at ``-s`` elements, ``... /* 0xaddr */`` where an
    element cannot be read). The count is argument *count* (or :data:`RET`), or the fixed
    *fixed* elements."""

    fn: StructDecoder
    elem_size: int
    count: int | None = None
    when: str = ENTRY
    fixed: int | None = None
    count_bits: int = 64
    ignore_error: bool = False

    def nmemb(self, ctx: Context) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.count == RET:
            return max(ctx.ret or 0, 0)
        assert self.count is not None
        return ctx.args[self.count] & ((1 << self.count_bits) - 1)

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        if self.when == EXIT and ctx.failed and not self.ignore_error:
            return hex(v)
        return array(ctx, v, self.nmemb(ctx), self.elem_size, self.fn)

    def footprint(self) -> Footprint:
        if self.fixed is not None:
            return Footprint(self.when, "array", self.elem_size, count=self.fixed)
        return Footprint(
            self.when,
            "array",
            self.elem_size,
            count_arg=None if self.count == RET else self.count,
            count_ret=self.count == RET,
            capped=True,
        )


def array(
    ctx: Context, v: int, nmemb: int, elem_size: int, fn: StructDecoder, limit: bool = True
) -> Value:
    """strace's ``print_array`` of *nmemb* elements at *v* (read up to the capture budget of
    elements)."""
    if v == 0:
        return "NULL"
    if nmemb == 0:
        return "[]"
    end = v + nmemb * elem_size
    if end > (1 << 64) or end <= v:
        return hex(v)
    budget = ctx.options.capture_bytes if limit else nmemb
    take = min(nmemb, budget + 1) if limit else nmemb
    items: list[Value] = []
    data = read(ctx.memory, v, take * elem_size)
    if data is not None:
        for i in range(take):
            items.append(fn(data[i * elem_size : (i + 1) * elem_size], ctx))
        return Items(tuple(items), more=take < nmemb and not limit, limit=limit)
    for i in range(take):
        chunk = read(ctx.memory, v + i * elem_size, elem_size)
        if chunk is None:
            if i == 0:
                return Unreadable(v)
            return Items(tuple(items), fault=v + i * elem_size, limit=limit)
        items.append(fn(chunk, ctx))
    return Items(tuple(items), limit=limit)


# -- signals and arrays of strings ------------------------------------------------------


@dataclass(frozen=True)
class SigSet(Kind):
    """A ``sigset_t *`` of argument *size* bytes (strace: the address unless it is 8)."""

    size: int | None = None
    when: str = ENTRY
    min_size: int = 8

    def decode(self, ctx: Context, v: int) -> Value:
        size = 8 if self.size is None else ctx.args[self.size]
        if size < self.min_size or size > 8 or v == 0:
            return addr(v)
        if self.when == EXIT and ctx.failed:
            return hex(v)
        data = read(ctx.memory, v, size)
        return Unreadable(v) if data is None else sigset(data)

    def footprint(self) -> Footprint:
        return Footprint(self.when, "bytes", 8)


@dataclass(frozen=True)
class StringArray(Kind):
    """``argv``: ``["ls", "-l"]`` (up to the capture budget of elements, each string up to
    the capture budget of bytes); with *count_only* ``0x7ffd... /* 12 vars */`` (strace's
    ``envp`` without ``-v``)."""

    count_only: bool = False

    def decode(self, ctx: Context, v: int) -> Value:
        if v == 0:
            return "NULL"
        if self.count_only:
            for count in range(1 << 16):
                p = read_u64(ctx.memory, v + 8 * count)
                if p is None:
                    if count == 0:
                        return Unreadable(v)
                    return f"{hex(v)} /* {count} var{'s' if count != 1 else ''}, unterminated */"
                if p == 0:
                    return f"{hex(v)} /* {count} var{'s' if count != 1 else ''} */"
            return hex(v)
        items: list[Value] = []
        budget = ctx.options.capture_bytes
        for i in range(budget + 1):
            p = read_u64(ctx.memory, v + 8 * i)
            if p is None:
                if not items:
                    return Unreadable(v)
                return Items(tuple(items), fault=v + 8 * i)
            if p == 0:
                return Items(tuple(items))
            if i == budget:
                return Items(tuple(items), more=True)
            items.append(CStr().decode(ctx, p))
        return Items(tuple(items))

    def footprint(self) -> Footprint:
        if self.count_only:  # every pointer up to the NULL, no string
            return Footprint(ENTRY, "array", 8, terminated=True)
        return Footprint(ENTRY, "array", 8, capped=True, follows="string", terminated=True)


__all__ += [
    "Num",
    "Id",
    "DirFd",
    "Ptr",
    "Flags",
    "Enum",
    "Signal",
    "OpenFlags",
    "Fn",
    "Label",
    "At",
    "Exit",
    "Path",
    "CStr",
    "Buf",
    "Struct",
    "IntP",
    "Array",
    "SigSet",
    "StringArray",
    "RET",
    "addr",
    "array",
    "buffer",
    "int_value",
]
