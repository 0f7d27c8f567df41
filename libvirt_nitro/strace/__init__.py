"""strace-level decoding of x86-64 Linux system calls, independent of any backend.

Raw registers in, decoded values out; text only when a formatter renders them::

    call = decode_entry(nr, args, memory, options)      # at the SYSCALL (guest stopped)
    values, ret_text = decode_exit(call, rax, memory, options)      # at the SYSRET
    format_line(call.name, render_args(values, string_limit=32), ret_text)
    # 'openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3'

Submodules: :mod:`.memory` (the :class:`GuestMemory` protocol), :mod:`.quote` (strings),
:mod:`.xlat` (flags, signals, modes), :mod:`.structs` (guest structs), :mod:`.values`
(decoded values and how they print), :mod:`.args` (argument kinds: how each prints, when,
and the memory it reads), :mod:`.signatures` (the one table: a signature for every x86-64
call of Linux 6.1, and :func:`footprints`, the memory a call reads), :mod:`.special`
(strace's own per-call logic: layouts that depend on an argument, return decorations),
:mod:`.decode` (the API), :mod:`.classes` (``%file``... and ``-e trace=``). Flag tables are
generated from the UAPI headers (:mod:`libvirt_nitro.linux.flags`).

What cannot be seen from outside: a return through IRET (after ``execve``, a signal
delivery, ``rt_sigreturn``) is not trapped, so the kernel's ``ERESTART*`` codes never show,
and a signal shows only when its handler returns (``rt_sigreturn``'s frame holds its
``siginfo``: the ``--- SIG... ---`` line comes then, not at the delivery); a signal that
kills, or is ignored, shows nothing (no ``+++ killed by ... +++``).
"""

from __future__ import annotations

from .classes import CLASSES, parse_trace_expr, syscall_class
from .decode import (
    Call,
    DecodeOptions,
    decode_entry,
    decode_exit,
    format_line,
    render_args,
    reread_unreadable,
    strace_name,
)
from .memory import GuestMemory
from .quote import quote
from .signatures import SIGNATURES, footprints
from .values import Value, render

__all__ = [
    "CLASSES",
    "SIGNATURES",
    "footprints",
    "Call",
    "DecodeOptions",
    "GuestMemory",
    "decode_entry",
    "decode_exit",
    "Value",
    "format_line",
    "parse_trace_expr",
    "quote",
    "render",
    "render_args",
    "reread_unreadable",
    "strace_name",
    "syscall_class",
]
