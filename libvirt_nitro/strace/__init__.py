"""strace-level decoding of x86-64 Linux system calls, independent of any backend.

Raw registers in, decoded values out; text only when a formatter renders them::

    call = decode_entry(nr, args, memory, options)      # at the SYSCALL (guest stopped)
    values, ret_text = decode_exit(call, rax, memory, options)      # at the SYSRET
    format_line(call.name, render_args(values, string_limit=32), ret_text)
    # 'openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3'

Submodules: :mod:`.memory` (the :class:`GuestMemory` protocol), :mod:`.quote` (strings),
:mod:`.xlat` (flags, signals, modes), :mod:`.structs` (guest structs), :mod:`.values`
(decoded values and how they print), :mod:`.args` (typed arguments), :mod:`.signatures`
(per-syscall tables), :mod:`.decode` (the API), :mod:`.classes` (``%file``... and
``-e trace=``). Flag tables are generated from the UAPI headers
(:mod:`libvirt_nitro.linux.flags`).
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
from .values import Value, render

__all__ = [
    "CLASSES",
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
