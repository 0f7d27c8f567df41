"""Entry and exit of one system call to decoded values (:mod:`.values`).

:func:`decode_entry` runs while the guest is stopped at the SYSCALL: it decodes what the call
reads (paths, written buffers, ``execve``'s argv, which are gone after an exec) and keeps the
raw registers. :func:`decode_exit` runs at the SYSRET: it decodes what the kernel wrote
(``read``'s buffer, ``fstat``'s struct) and the return value. :func:`render_args` and
:func:`format_line` make strace's text of them. A decoder that fails gives the raw hex
instead, and the failure is counted in :attr:`DecodeOptions.failures`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..linux import format_return, syscall_name, to_signed64
from .args import Arg, Context
from .memory import GuestMemory
from .signatures import RETURNS, SIGNATURES
from .structs import hex_c
from .values import Value, is_unreadable, render

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
        most ``argv`` elements (a formatter prints at most this much of them: its ``-s`` is
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
    """

    nr: int
    name: str
    args: tuple[int, ...]
    entry_values: list[Value | None]


def strace_name(nr: int) -> str:
    """strace 6.1's name of x86-64 system call *nr*: ``openat``, or ``syscall_0x3ff``."""
    return syscall_name(nr)


def _signature(name: str, args: tuple[int, ...]) -> tuple[Arg, ...] | None:
    sig = SIGNATURES.get(name)
    if sig is None or isinstance(sig, tuple):
        return sig
    return sig(args)


def _decode(arg: Arg, ctx: Context, index: int, name: str) -> Value:
    value = ctx.args[index] if index < len(ctx.args) else 0
    try:
        return arg.decode(ctx, value)
    except Exception:  # noqa: BLE001 - a decoder bug must not lose the event
        ctx.options.failures[name] += 1
        return arg.label + hex_c(value)


def _normalise(args: Sequence[int]) -> tuple[int, ...]:
    regs = tuple(a & ((1 << 64) - 1) for a in args)
    return regs + (0,) * (_RAW_ARGS - len(regs))


def decode_entry(
    nr: int, args: Sequence[int], memory: GuestMemory | None, options: DecodeOptions
) -> Call:
    """Decode a system call at its entry: *nr* from ``rax``, *args* the six argument
    registers (``u64``), *memory* the caller's address space (None: nothing readable)."""
    regs = _normalise(args)
    name = strace_name(nr)
    ctx = Context(memory, options, regs)
    sig = _signature(name, regs)
    if sig is None:
        return Call(nr, name, regs, [hex_c(v) for v in regs])
    values = [None if a.at_exit else _decode(a, ctx, i, name) for i, a in enumerate(sig)]
    return Call(nr, name, regs, values)


def decode_exit(
    call: Call, ret: int, memory: GuestMemory | None, options: DecodeOptions
) -> tuple[list[Value], str]:
    """Finish *call* at its exit with *ret* (raw ``u64`` ``rax``): ``(argument values,
    return text)``; rendered, e.g. ``('3, "root:x:0:0"..., 4096', "1274")``."""
    signed = to_signed64(ret)
    ctx = Context(memory, options, call.args, signed)
    sig = _signature(call.name, call.args) or ()
    values = [
        value if value is not None else _decode(sig[i], ctx, i, call.name)
        for i, value in enumerate(call.entry_values)
    ]
    returns = RETURNS.get(call.name)
    try:
        ret_text = returns(ctx, ret) if returns else format_return(ret)
    except Exception:  # noqa: BLE001 - same rule as the arguments
        options.failures[call.name] += 1
        ret_text = format_return(ret)
    return values, ret_text


def reread_unreadable(call: Call, memory: GuestMemory | None, options: DecodeOptions) -> Call:
    """*call* with the entry arguments that could not be read at entry read again through
    *memory*. A page the guest had not touched yet is not mapped at the entry (a path in a
    program's data just after execve); the kernel touched it while serving the call, so it
    can be read at the exit."""
    stale = [is_unreadable(value) for value in call.entry_values]
    if not any(stale):
        return call
    fresh = decode_entry(call.nr, call.args, memory, options)
    values = [
        new if again else old
        for old, new, again in zip(call.entry_values, fresh.entry_values, stale, strict=True)
    ]
    return Call(call.nr, call.name, call.args, values)


def render_args(values: Sequence[Value | None], string_limit: int) -> str:
    """The arguments as strace prints them with ``-s`` *string_limit*. An entry's values stop
    at the first one decoded at exit (None): then the text ends in ``", "`` if any came
    before it, as strace prints an unfinished call (``"17977, "``)."""
    shown = []
    for value in values:
        if value is None:
            return ", ".join(shown) + ", " if shown else ""
        shown.append(render(value, string_limit))
    return ", ".join(shown)


def format_line(name: str, args_text: str, ret_text: str | None) -> str:
    """``name(args) = ret``, or ``name(args <unfinished ...>`` when *ret_text* is None."""
    if ret_text is None:
        return f"{name}({args_text} <unfinished ...>"
    return f"{name}({args_text}) = {ret_text}"
