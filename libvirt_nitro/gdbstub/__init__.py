"""The gdbstub backend's transport: QEMU's GDB remote serial protocol over a unix socket.

:mod:`.rsp` is the protocol client (:class:`RspClient`), :mod:`.target` the register layout
a stub describes (:class:`TargetDescription`).
"""

from __future__ import annotations

from .rsp import (
    SIGNAL_INT,
    SIGNAL_TRAP,
    RspClient,
    StopReply,
    checksum,
    decode_payload,
    escape,
    frame,
    parse_stop_reply,
    parse_thread_id,
)
from .tdesc import Register, TargetDescription

__all__ = [
    "SIGNAL_INT",
    "SIGNAL_TRAP",
    "Register",
    "RspClient",
    "StopReply",
    "TargetDescription",
    "checksum",
    "decode_payload",
    "escape",
    "frame",
    "parse_stop_reply",
    "parse_thread_id",
]
