"""Guest memory as the decoders see it, and reads that fall back instead of failing.

A decoder never lets an unreadable pointer stop a line: strace prints the address instead.
:class:`GuestMemory` is implemented elsewhere over the guest's page tables (guest-virtual
addresses of the traced process).
"""

from __future__ import annotations

import struct
from typing import Protocol

from ..errors import NitroError

__all__ = ["GuestMemory", "read", "read_cstring", "read_u32", "read_u64", "read_s32"]


class GuestMemory(Protocol):
    """Readable guest-virtual memory of the process that made the system call."""

    def read(self, address: int, size: int) -> bytes:
        """*size* bytes at guest-virtual *address*.

        :raises NitroError: some byte of the range is unreadable.
        """
        ...

    def read_cstring(self, address: int, limit: int) -> tuple[bytes, bool]:
        """The NUL-terminated string at *address*, without its NUL, at most *limit* bytes:
        ``(bytes, truncated)``, *truncated* when no NUL came within *limit* bytes.

        :raises NitroError: the first byte is unreadable.
        """
        ...


def read(memory: GuestMemory | None, address: int, size: int) -> bytes | None:
    """*size* bytes at *address*, or None if *memory* is None, *address* NULL or unreadable."""
    if memory is None or address == 0:
        return None
    try:
        data = memory.read(address, size)
    except NitroError:
        return None
    return data if len(data) == size else None


def read_cstring(memory: GuestMemory | None, address: int, limit: int) -> tuple[bytes, bool] | None:
    """``(bytes, truncated)`` of the C string at *address*, or None if it cannot be read."""
    if memory is None or address == 0:
        return None
    try:
        return memory.read_cstring(address, limit)
    except NitroError:
        return None


def _unpack(memory: GuestMemory | None, address: int, fmt: str) -> int | None:
    data = read(memory, address, struct.calcsize(fmt))
    return None if data is None else struct.unpack(fmt, data)[0]


def read_u64(memory: GuestMemory | None, address: int) -> int | None:
    """The ``__u64`` at *address* (little-endian), or None."""
    return _unpack(memory, address, "<Q")


def read_u32(memory: GuestMemory | None, address: int) -> int | None:
    """The ``__u32`` at *address*, or None."""
    return _unpack(memory, address, "<I")


def read_s32(memory: GuestMemory | None, address: int) -> int | None:
    """The ``int`` at *address*, or None."""
    return _unpack(memory, address, "<i")
