"""Guest-physical memory read straight out of the QEMU process (``/proc/<pid>/mem``).

Guest RAM is ordinary anonymous (or file/hugetlb) memory of the QEMU process, so a
ptrace-capable reader (root) gets any of it with one ``pread`` on ``/proc/<qemu pid>/mem``:
no gdbstub packet, no vCPU stop, usable from any thread and under KVM or TCG alike.

Where each guest-physical range sits in QEMU's address space is asked once from the QEMU
monitor (through libvirt, :func:`~libvirt_nitro.domain.hmp`), in two steps. QEMU 7.2 output
formats, as measured:

``info mtree -f`` prints every flat view; the one of the system address space starts with
the line `` AS "memory", root: system``, then one line per range, e.g.::

      0000000000000000-00000000000c2fff (prio 0, ram): pc.ram
      00000000000c3000-00000000000e7fff (prio 0, rom): pc.ram @00000000000c3000
      0000000000100000-000000000fffffff (prio 0, ram): pc.ram @0000000000100000
      00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic
      00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios

(start-end inclusive; the type is ``ram``, ``rom`` — read-only, including read-only aliases
of RAM such as the PC's legacy BIOS shadow —, ``romd``, ``ramd`` or ``i/o``, optionally
prefixed ``nv-``; then the region's name and its offset within it). Kept: ``ram`` ranges and
``rom`` ranges of a region that also appears as ``ram`` (an alias of RAM made read-only).
Device memory (``i/o``, ``romd``, ``ramd``) and firmware ROMs are not guest RAM.

``gpa2hva ADDR`` answers ``Host virtual address for 0x100000 (pc.ram) is 0x7fa2fff00000``,
or ``Memory at address 0xfec00000 is not RAM`` / ``No memory is mapped at address
0x10000000``. It is asked for the first and the last byte of each kept range; the two must
be as far apart in QEMU as in the guest (a linear mapping), and adjacent ranges contiguous on
both sides are merged (the test guest's 256 MiB of ``pc.ram`` become one range).

The map is learned once: memory hot-plug after :meth:`QemuPhysicalMemory.from_domain` is
not seen (build a new object).
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass
from typing import Any

from ..domain import hmp
from ..errors import GuestMemoryError, NitroError, PermissionDenied, QemuMonitorError

__all__ = [
    "FlatRange",
    "RamRange",
    "QemuPhysicalMemory",
    "parse_flatview",
    "ram_ranges",
    "parse_gpa2hva",
]

_RANGE = re.compile(
    r"^\s+(?P<start>[0-9a-f]+)-(?P<last>[0-9a-f]+) \(prio -?\d+, (?P<type>[^)]+)\): (?P<rest>.*)$"
)
_GPA2HVA = re.compile(r"Host virtual address for 0x([0-9a-f]+) \(([^)]*)\) is 0x([0-9a-f]+)")
_SYSTEM_AS = ' AS "memory",'


@dataclass(frozen=True)
class FlatRange:
    """One range of a QEMU flat view: guest-physical ``start``..``last`` (inclusive, bytes),
    its ``type`` (``"ram"``, ``"rom"``, ``"i/o"``, ...), the region's ``name`` and the
    range's ``offset`` within that region."""

    start: int
    last: int
    type: str
    name: str
    offset: int


@dataclass(frozen=True)
class RamRange:
    """Guest RAM at guest-physical ``gpa`` .. ``gpa + size`` (bytes), mapped in QEMU at
    host-virtual address ``hva``; ``name`` is the QEMU memory region."""

    gpa: int
    size: int
    hva: int
    name: str

    @property
    def end(self) -> int:
        """One past the last guest-physical address."""
        return self.gpa + self.size


def parse_flatview(text: str) -> list[FlatRange]:
    """The ranges of the system memory flat view in ``info mtree -f`` output *text*.

    :raises QemuMonitorError: the text has no flat view of the ``memory`` address space.
    """
    lines = text.splitlines()
    try:
        first = next(i for i, line in enumerate(lines) if line.startswith(_SYSTEM_AS))
    except StopIteration:
        raise QemuMonitorError(
            "QEMU's 'info mtree -f' shows no flat view of the \"memory\" address space"
        ) from None
    ranges = []
    for line in lines[first + 1 :]:
        if line.startswith("FlatView") or not line.strip():
            break
        match = _RANGE.match(line)
        if match is None:
            continue  # ' AS ...', ' Root memory region: ...'
        rest = match["rest"].strip()
        name, at, offset = rest.rpartition(" @")
        if not at or not re.fullmatch(r"[0-9a-f]+", offset):
            name, offset = rest, "0"
        ranges.append(
            FlatRange(
                start=int(match["start"], 16),
                last=int(match["last"], 16),
                type=match["type"].removeprefix("nv-"),
                name=name,
                offset=int(offset, 16),
            )
        )
    return ranges


def ram_ranges(ranges: list[FlatRange]) -> list[FlatRange]:
    """The ranges of *ranges* that are guest RAM: ``ram`` ones, and ``rom`` ones of a region
    that is also mapped as ``ram`` (read-only aliases of RAM)."""
    ram_names = {r.name for r in ranges if r.type == "ram"}
    return [r for r in ranges if r.type == "ram" or (r.type == "rom" and r.name in ram_names)]


def parse_gpa2hva(text: str, gpa: int) -> int:
    """The host-virtual address in ``gpa2hva`` output *text* (asked for *gpa*).

    :raises QemuMonitorError: QEMU answered anything else (not RAM, nothing mapped).
    """
    match = _GPA2HVA.search(text)
    if match is None or int(match[1], 16) != gpa:
        reply = " ".join(text.split()) or "no reply"
        raise QemuMonitorError(f"QEMU's gpa2hva {gpa:#x}: {reply}")
    return int(match[3], 16)


class QemuPhysicalMemory:
    """Guest-physical memory of a running QEMU, read with ``pread`` on ``/proc/<pid>/mem``.

    Build with :meth:`from_domain`. Thread-safe (``pread`` has no file position). Owns an fd:
    :meth:`close` it, or use the object as a context manager.

    :ivar ranges: the guest RAM, sorted by guest-physical address
    """

    def __init__(self, pid: int, ranges: list[RamRange]) -> None:
        self.pid = pid
        self.ranges = sorted(ranges, key=lambda r: r.gpa)
        self._starts = [r.gpa for r in self.ranges]
        path = f"/proc/{pid}/mem"
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except PermissionError:
            raise PermissionDenied(
                f"cannot open {path}: need root (ptrace access to QEMU pid {pid})"
            ) from None
        except FileNotFoundError:
            raise NitroError(f"QEMU process {pid} is gone") from None

    @classmethod
    def from_domain(cls, dom: Any, pid: int) -> QemuPhysicalMemory:
        """Map the guest RAM of running domain *dom* (``virDomain``), whose QEMU process is
        *pid* (:attr:`QemuProcess.pid <libvirt_nitro.domain.QemuProcess.pid>`).

        Costs one ``info mtree -f`` plus two ``gpa2hva`` monitor commands per RAM range.

        :raises QemuMonitorError: the monitor's answers are not as expected (see the module
            doc), or a range is not linearly mapped in QEMU.
        :raises PermissionDenied: ``/proc/<pid>/mem`` cannot be opened (not root).
        """
        merged: list[RamRange] = []
        for flat in ram_ranges(parse_flatview(hmp(dom, "info mtree -f"))):
            hva = parse_gpa2hva(hmp(dom, f"gpa2hva {flat.start:#x}"), flat.start)
            last = parse_gpa2hva(hmp(dom, f"gpa2hva {flat.last:#x}"), flat.last)
            if last - hva != flat.last - flat.start:
                raise QemuMonitorError(
                    f"guest RAM {flat.start:#x}-{flat.last:#x} ({flat.name}) is not linearly "
                    f"mapped in QEMU: host {hva:#x}-{last:#x}"
                )
            size = flat.last - flat.start + 1
            previous = merged[-1] if merged else None
            if (
                previous is not None
                and previous.end == flat.start
                and previous.hva + previous.size == hva
            ):
                merged[-1] = RamRange(previous.gpa, previous.size + size, previous.hva, flat.name)
            else:
                merged.append(RamRange(flat.start, size, hva, flat.name))
        if not merged:
            raise QemuMonitorError(f"QEMU of {dom.name()!r} shows no guest RAM in 'info mtree -f'")
        return cls(pid, merged)

    def read(self, gpa: int, size: int) -> bytes:
        """*size* bytes of guest-physical memory at *gpa* (may span adjacent RAM ranges).

        :raises GuestMemoryError: part of the range is not guest RAM (names the first
            address that is not), or QEMU's memory there cannot be read.
        """
        if self._fd is None:
            raise NitroError(f"guest memory of QEMU pid {self.pid} is closed")
        if size < 0 or gpa < 0:
            raise ValueError(f"bad guest-physical read {gpa:#x}, {size} bytes")
        parts = []
        address, remaining = gpa, size
        while remaining:
            index = bisect.bisect_right(self._starts, address) - 1
            ram = self.ranges[index] if index >= 0 else None
            if ram is None or address >= ram.end:
                raise GuestMemoryError(address, size)
            chunk = min(remaining, ram.end - address)
            hva = ram.hva + (address - ram.gpa)
            try:
                data = os.pread(self._fd, chunk, hva)
            except OSError as exc:
                why = f"cannot be read in QEMU at host {hva:#x}: {exc.strerror}"
                raise GuestMemoryError(address, size, why) from None
            if len(data) != chunk:
                why = f"cannot be read in QEMU at host {hva + len(data):#x}: short read"
                raise GuestMemoryError(address + len(data), size, why)
            parts.append(data)
            address += chunk
            remaining -= chunk
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def close(self) -> None:
        """Close ``/proc/<pid>/mem`` (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> QemuPhysicalMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        ram = ", ".join(f"{r.gpa:#x}+{r.size:#x}@{r.hva:#x}" for r in self.ranges)
        return f"<QemuPhysicalMemory pid {self.pid}: {ram}>"
