"""strace-level decoding of x86-64 Linux system calls, independent of any backend.

Raw registers in, strace's text out::

    call = decode_entry(nr, args, memory, options)      # at the SYSCALL (guest stopped)
    args_text, ret_text = decode_exit(call, rax, memory, options)   # at the SYSRET
    format_line(call.name, args_text, ret_text)
    # 'openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3'

Submodules: :mod:`.memory` (the :class:`GuestMemory` protocol), :mod:`.quote` (strings),
:mod:`.xlat` (flags, signals, modes), :mod:`.structs` (guest structs), :mod:`.args` (typed
arguments), :mod:`.signatures` (per-syscall tables), :mod:`.decode` (the API),
:mod:`.classes` (``%file``... and ``-e trace=``). Flag tables are generated from the UAPI
headers (:mod:`libvirt_nitro.linux.flags`).
"""

from __future__ import annotations

from .classes import CLASSES, parse_trace_expr, syscall_class
from .decode import Call, DecodeOptions, decode_entry, decode_exit, format_line, strace_name
from .memory import GuestMemory
from .quote import quote

__all__ = [
    "CLASSES",
    "Call",
    "DecodeOptions",
    "GuestMemory",
    "decode_entry",
    "decode_exit",
    "format_line",
    "parse_trace_expr",
    "quote",
    "strace_name",
    "syscall_class",
]
