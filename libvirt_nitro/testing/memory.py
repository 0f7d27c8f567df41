"""Guest memory made of a few byte strings, for decoder tests and benchmarks: the
:class:`~libvirt_nitro.strace.memory.GuestMemory` of a traced process without a guest."""

from __future__ import annotations

from ..errors import NitroError

__all__ = ["FakeMemory"]


class FakeMemory:
    """Guest memory as a dict of address -> bytes; anything else is unreadable."""

    def __init__(self, regions: dict[int, bytes] | None = None):
        self.regions = dict(regions or {})

    def read(self, address: int, size: int) -> bytes:
        for start, data in self.regions.items():
            if start <= address and address + size <= start + len(data):
                return data[address - start : address - start + size]
        raise NitroError(f"unreadable {address:#x}+{size}")

    def read_cstring(self, address: int, limit: int) -> tuple[bytes, bool]:
        # As the page-table reader: at most *limit* bytes, never past the NUL, and a string
        # that runs into unreadable memory before its NUL (or *limit*) is unreadable.
        for start, data in self.regions.items():
            if start <= address < start + len(data):
                tail = data[address - start :]
                end = tail.find(b"\0", 0, limit)
                if end != -1:
                    return tail[:end], False
                if len(tail) < limit:
                    raise NitroError(f"string at {address:#x} runs into unreadable memory")
                return tail[:limit], True
        raise NitroError(f"unreadable {address:#x}")
