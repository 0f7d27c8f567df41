"""Entry and exit of one system call to decoded values (:mod:`.values`).

:func:`decode_entry` runs while the guest is stopped at the SYSCALL: it decodes what the call
reads (paths, written buffers, ``execve``'s argv, which are gone after an exec), keeps the
raw registers, and saves what the exit needs of the entry's memory (an in/out length).
:func:`decode_exit` runs at the SYSRET: it decodes what the kernel wrote (``read``'s buffer,
``fstat``'s struct) and the return value. :func:`render_args` and :func:`format_line` make
strace's text of them. A decoder that fails gives the raw hex instead, and the failure is
counted in :attr:`DecodeOptions.failures`.

Signatures come from the one table of :mod:`.signatures`; a call whose number the 6.1 table
lacks prints as strace prints it (``syscall_0x3ff(0x1, ...)``, six hex arguments).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..linux import SYSCALLS_X86_64, format_return, syscall_name, to_signed64
from .args import ENTRY, Context, Kind
from .memory import GuestMemory, read
from .signatures import SIGNATURES, Sig
from .structs import hex_c, siginfo
from .values import Unreadable, Value, is_unreadable, render
from .xlat import signal_name, sigset

__all__ = [
    "Call",
    "DecodeOptions",
    "decode_entry",
    "decode_exit",
    "format_line",
    "render_args",
    "reread_unreadable",
    "strace_name",
]

_RAW_ARGS = 6


@dataclass
class DecodeOptions:
    """What decoding reads, and what it counts.

    :ivar capture_bytes: the most bytes of a string or buffer read from the guest, and the
        most array elements (a formatter prints at most this much of them: its ``-s`` is
        at most this); default 32, strace's default ``-s``
    :ivar failures: decoder failures by system call name (each fell back to hex)
    """

    capture_bytes: int = 32
    failures: Counter[str] = field(default_factory=Counter)


@dataclass
class Call:
    """One system call in flight (x86-64).

    :ivar nr: system call number (``rax`` at entry)
    :ivar name: strace's name (``syscall_0x3ff`` for a number the table lacks)
    :ivar args: the six raw ``u64`` argument registers (rdi, rsi, rdx, r10, r8, r9)
    :ivar entry_values: each argument decoded at entry; None where it is decoded at exit
    :ivar saved: what entry decoders kept for the exit, by argument index
    :ivar sp: the user stack pointer at entry (None: unknown)
    :ivar entry_ret: the return text when the line is complete at entry (``?``: the call
        does not return, ``exit_group``), else None
    :ivar assumed_ret: what the call returned if its exit is never seen: ``rt_sigreturn``
        returns its frame's ``rax`` (a return through IRET is not trapped)
    :ivar signal: ``rt_sigreturn``: the signal its frame delivered, ``(name, siginfo)``
    :ivar kinds: the argument kinds the entry used (a layout's choice, kept for the exit)
    """

    nr: int
    name: str
    args: tuple[int, ...]
    entry_values: list[Value | None]
    saved: dict[int, Any] = field(default_factory=dict)
    sp: int | None = None
    entry_ret: str | None = None
    assumed_ret: str | None = None
    signal: tuple[str, Value] | None = None
    kinds: tuple[Kind, ...] | None = field(default=None, repr=False, compare=False)


#: The x86-64 names by number, looked up once per event.
_NAMES: dict[int, str] = dict(SYSCALLS_X86_64)


def strace_name(nr: int) -> str:
    """strace 6.1's name of x86-64 system call *nr*: ``openat``, or ``syscall_0x3ff``."""
    name = _NAMES.get(nr)
    return name if name is not None else syscall_name(nr)


def _decode(kind: Kind, ctx: Context, index: int, name: str) -> Value:
    value = ctx.args[index] if index < len(ctx.args) else 0
    ctx.index = index
    try:
        return kind.decode(ctx, value)
    except Exception:  # noqa: BLE001 - a decoder bug must not lose the event
        return _failed(kind, ctx, value, name)


def _failed(kind: Kind, ctx: Context, value: int, name: str) -> Value:
    """What an argument whose decoder raised prints (its raw hex), the failure counted."""
    ctx.options.failures[name] += 1
    label = getattr(kind, "label", "")
    return label + hex_c(value)


_U64 = (1 << 64) - 1


def _normalise(args: Sequence[int]) -> tuple[int, ...]:
    regs = tuple(map(_U64.__and__, args))
    return regs if len(regs) == _RAW_ARGS else regs + (0,) * (_RAW_ARGS - len(regs))


def _kinds(sig: Sig | None, regs: tuple[int, ...]) -> tuple[Kind, ...] | None:
    return None if sig is None else sig.kinds(regs)


def decode_entry(
    nr: int,
    args: Sequence[int],
    memory: GuestMemory | None,
    options: DecodeOptions,
    sp: int | None = None,
) -> Call:
    """Decode a system call at its entry: *nr* from ``rax``, *args* the six argument
    registers (``u64``), *memory* the caller's address space (None: nothing readable), *sp*
    the user stack pointer (``rsp``; ``rt_sigreturn``'s frame is there)."""
    regs = _normalise(args)
    name = strace_name(nr)
    ctx = Context(memory, options, regs, sp=sp)
    sig = SIGNATURES.get(name)
    if sig is not None and sig.args.__class__ is tuple:
        kinds: tuple[Kind, ...] | None = sig.args  # type: ignore[assignment]
    else:
        try:
            kinds = _kinds(sig, regs)
        except Exception:  # noqa: BLE001 - a layout bug: the raw registers
            options.failures[name] += 1
            kinds = None
    if kinds is None:
        return Call(nr, name, regs, [hex_c(v) for v in regs], sp=sp)
    values: list[Value | None] = []
    saved: dict[int, Any] = {}
    for i, kind in enumerate(kinds):
        if kind.when == ENTRY:
            if i < _RAW_ARGS:  # _decode, inlined: the hot path
                ctx.index = i
                try:
                    values.append(kind.decode(ctx, regs[i]))
                except Exception:  # noqa: BLE001 - a decoder bug must not lose the event
                    values.append(_failed(kind, ctx, regs[i], name))
            else:
                values.append(_decode(kind, ctx, i, name))
            continue
        values.append(None)
        if kind.saves:
            ctx.index = i
            try:
                saved[i] = kind.save(ctx, regs[i] if i < len(regs) else 0)
            except Exception:  # noqa: BLE001
                options.failures[name] += 1
    call = Call(nr, name, regs, values, saved, sp, kinds=kinds)
    if sig is not None and sig.ret.fmt == "none":
        call.entry_ret = "?"
    if name == "rt_sigreturn":
        _sigreturn(call, memory)
    return call


#: x86-64 ``struct rt_sigframe`` (at ``rsp - 8`` when the handler's ``ret`` has popped
#: ``pretcode``): ``uc`` at 8 (``uc_mcontext`` at 40 in it, ``rax`` at 104 in that;
#: ``uc_sigmask`` at 296), ``info`` at 312.
_FRAME_RAX = 8 + 40 + 104
_FRAME_MASK = 8 + 296
_FRAME_INFO = 8 + 304


def _sigreturn(call: Call, memory: GuestMemory | None) -> None:
    """rt_sigreturn: its frame's mask (``{mask=[]}``), the signal the frame delivered, and
    what it returns (the interrupted context's ``rax``)."""
    if call.sp is None:
        return
    frame = call.sp - 8
    mask = read(memory, frame + _FRAME_MASK, 8)
    call.entry_values = [
        "{mask=" + (hex(frame + _FRAME_MASK) if mask is None else sigset(mask)) + "}"
    ]
    rax = read(memory, frame + _FRAME_RAX, 8)
    if rax is not None:
        call.assumed_ret = format_return(struct.unpack("<Q", rax)[0])
    info = read(memory, frame + _FRAME_INFO, 128)
    if info is not None:
        (signo,) = struct.unpack_from("<i", info)
        if 0 < signo <= 64:
            call.signal = (signal_name(signo), siginfo(info))


def decode_exit(
    call: Call, ret: int, memory: GuestMemory | None, options: DecodeOptions
) -> tuple[list[Value], str]:
    """Finish *call* at its exit with *ret* (raw ``u64`` ``rax``): ``(argument values,
    return text)``; rendered, e.g. ``('3, "root:x:0:0"..., 4096', "1274")``."""
    args = call.args
    ctx = Context(memory, options, args, to_signed64(ret), call.sp, call.saved)
    sig = SIGNATURES.get(call.name)
    kinds: tuple[Kind, ...] = ()
    if call.kinds is not None:
        kinds = call.kinds
    elif sig is not None:
        try:
            kinds = sig.kinds(args)
        except Exception:  # noqa: BLE001
            kinds = ()
    values = []
    for i, value in enumerate(call.entry_values):
        if value is not None:
            values.append(value)
        elif i < len(kinds):
            kind = kinds[i]
            ctx.index = i  # _decode, inlined: the hot path
            try:
                values.append(kind.decode(ctx, args[i]))
            except Exception:  # noqa: BLE001 - a decoder bug must not lose the event
                values.append(_failed(kind, ctx, args[i], call.name))
        else:
            values.append(hex_c(args[i]))
    if sig is None:
        return values, format_return(ret)
    if call.name == "rt_sigreturn":
        return values, format_return(ret)
    try:
        ret_text = sig.ret.text(ctx, ret)
    except Exception:  # noqa: BLE001 - same rule as the arguments
        options.failures[call.name] += 1
        ret_text = format_return(ret)
    return values, ret_text


def reread_unreadable(call: Call, memory: GuestMemory | None, options: DecodeOptions) -> Call:
    """*call* with the entry arguments that could not be read at entry read again through
    *memory*. A page the guest had not touched yet is not mapped at the entry (a path in a
    program's data just after execve); the kernel touched it while serving the call, so it
    can be read at the exit."""
    for value in call.entry_values:
        if isinstance(value, Unreadable):
            break
    else:
        return call
    stale = [is_unreadable(value) for value in call.entry_values]
    fresh = decode_entry(call.nr, call.args, memory, options, call.sp)
    values = [
        new if again else old
        for old, new, again in zip(call.entry_values, fresh.entry_values, stale, strict=True)
    ]
    return Call(
        call.nr,
        call.name,
        call.args,
        values,
        call.saved or fresh.saved,
        call.sp,
        call.entry_ret,
        call.assumed_ret,
        call.signal,
        call.kinds,
    )


def render_args(values: Sequence[Value | None], string_limit: int) -> str:
    """The arguments as strace prints them with ``-s`` *string_limit*. An entry's values stop
    at the first one decoded at exit (None): then the text ends in ``", "`` if any came
    before it, as strace prints an unfinished call (``"17977, "``)."""
    shown = []
    for value in values:
        if value is None:
            return ", ".join(shown) + ", " if shown else ""
        shown.append(value if value.__class__ is str else render(value, string_limit))
    return ", ".join(shown)


def format_line(name: str, args_text: str, ret_text: str | None) -> str:
    """``name(args) = ret``, or ``name(args <unfinished ...>`` when *ret_text* is None."""
    if ret_text is None:
        return f"{name}({args_text} <unfinished ...>"
    return f"{name}({args_text}) = {ret_text}"
