"""Guest-virtual memory: the x86-64 page-table walk, done in software over guest-physical memory.

A walk starts at CR3 (its PCID bits 0-11 and its no-flush bit 63 are not part of the address)
and reads one 8-byte entry per level: PML5 (only with CR4.LA57), PML4, PDPT, PD, PT. An entry
without the present bit ends the walk with :class:`~libvirt_nitro.errors.PageFault`; the
page-size bit maps a 1 GiB page at the PDPT and a 2 MiB page at the PD (Intel SDM vol. 3A
§4.5). Access rights (U/S, R/W, NX, SMAP/PKU) are not checked: the tracer reads what the
guest kernel could read. The address must be canonical (bits 63..47 equal, 63..56 with LA57).

Page tables are read live, so a translation is only as fresh as the guest's page tables at
the time of the read: make one :class:`VirtualMemory` per event (the vCPU stopped, or the
process known to be alive) rather than keeping one across events.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from ..errors import PageFault

__all__ = [
    "PhysicalMemory",
    "VirtualMemory",
    "translate",
    "walk",
    "CR3_ADDRESS_MASK",
    "CR4_LA57",
    "PAGE_SIZE",
    "PTE_PRESENT",
    "PTE_PS",
]

#: Bytes of a 4 KiB page.
PAGE_SIZE = 4096
#: CR4.LA57: 5-level paging (57-bit virtual addresses).
CR4_LA57 = 1 << 12
#: Entry bit 0: present.
PTE_PRESENT = 1 << 0
#: Entry bit 7: page size (1 GiB in a PDPTE, 2 MiB in a PDE; reserved in PML4E/PML5E).
PTE_PS = 1 << 7
#: Physical address bits 51..12 of an entry or of CR3 (MAXPHYADDR at its architectural max).
CR3_ADDRESS_MASK = 0x000F_FFFF_FFFF_F000
_ADDRESS_MASK = CR3_ADDRESS_MASK
_U64 = (1 << 64) - 1
_LEVEL_NAMES = {5: "PML5E", 4: "PML4E", 3: "PDPTE", 2: "PDE", 1: "PTE"}


class PhysicalMemory(Protocol):
    """Anything that reads guest-physical memory (e.g.
    :class:`~libvirt_nitro.memory.physmem.QemuPhysicalMemory`)."""

    def read(self, gpa: int, size: int) -> bytes:
        """*size* bytes at guest-physical *gpa*; raises
        :class:`~libvirt_nitro.errors.GuestMemoryError` outside RAM."""
        ...


def walk(phys: PhysicalMemory, cr3: int, vaddr: int, la57: bool = False) -> tuple[int, int]:
    """Translate guest-virtual *vaddr* through the page tables at *cr3*.

    :returns: (guest-physical address, size in bytes of the page that maps it: 4 KiB,
        2 MiB or 1 GiB)
    :raises PageFault: *vaddr* is not canonical, or an entry on the way is not present
        (or has the reserved page-size bit at level 4/5)
    :raises GuestMemoryError: a page table is not in guest RAM (a bogus CR3 or entry)
    """
    vaddr &= _U64
    levels = 5 if la57 else 4
    bits = 57 if la57 else 48
    sign = vaddr >> (bits - 1)
    if sign not in (0, (1 << (65 - bits)) - 1):
        raise PageFault(vaddr, levels, f"not canonical for {levels}-level paging")
    table = cr3 & CR3_ADDRESS_MASK
    for level in range(levels, 0, -1):
        shift = 12 + 9 * (level - 1)
        entry_address = table + 8 * ((vaddr >> shift) & 0x1FF)
        entry = int.from_bytes(phys.read(entry_address, 8), "little")
        if not entry & PTE_PRESENT:
            raise PageFault(vaddr, level, f"{_LEVEL_NAMES[level]} not present")
        if entry & PTE_PS and level != 1:
            if level > 3:
                raise PageFault(vaddr, level, f"{_LEVEL_NAMES[level]} has the reserved PS bit")
            page = 1 << shift
            # Bit 12 of a large-page entry is PAT, not address.
            return (entry & _ADDRESS_MASK & ~(page - 1)) | (vaddr & (page - 1)), page
        table = entry & _ADDRESS_MASK
    return table | (vaddr & (PAGE_SIZE - 1)), PAGE_SIZE


def translate(phys: PhysicalMemory, cr3: int, vaddr: int, la57: bool = False) -> int:
    """The guest-physical address of guest-virtual *vaddr* under the page tables at *cr3*
    (4-level paging, or 5-level when *la57*, i.e. CR4.LA57). See :func:`walk`.

    :raises PageFault: not mapped, or not canonical
    """
    return walk(phys, cr3, vaddr, la57)[0]


class VirtualMemory:
    """The guest-virtual address space of CR3 *cr3*, read through guest-physical *phys*.

    Translations are cached per 4 KiB page (the last :attr:`CACHE_PAGES` pages used), so a
    read touching a page again costs no walk; :meth:`flush` drops them.

    :ivar walks: page-table walks done (cache misses)
    :ivar hits: translations answered from the cache
    """

    #: Translations kept (4 KiB pages).
    CACHE_PAGES = 64

    def __init__(self, phys: PhysicalMemory, cr3: int, la57: bool = False) -> None:
        self.phys = phys
        self.cr3 = cr3
        self.la57 = la57
        self._pages: OrderedDict[int, int] = OrderedDict()
        self.walks = 0
        self.hits = 0

    def __repr__(self) -> str:
        paging = "5-level" if self.la57 else "4-level"
        return f"<VirtualMemory cr3={self.cr3:#x} {paging}>"

    def flush(self) -> None:
        """Forget every cached translation."""
        self._pages.clear()

    def _page(self, vaddr: int) -> int:
        """Guest-physical address of the 4 KiB page holding *vaddr*."""
        number = vaddr >> 12
        frame = self._pages.get(number)
        if frame is not None:
            self._pages.move_to_end(number)
            self.hits += 1
            return frame
        self.walks += 1
        frame = translate(self.phys, self.cr3, vaddr, self.la57) & ~(PAGE_SIZE - 1)
        self._pages[number] = frame
        if len(self._pages) > self.CACHE_PAGES:
            self._pages.popitem(last=False)
        return frame

    def translate(self, vaddr: int) -> int:
        """The guest-physical address of guest-virtual *vaddr* (cached).

        :raises PageFault: not mapped
        """
        vaddr &= _U64
        return self._page(vaddr) | (vaddr & (PAGE_SIZE - 1))

    def read(self, vaddr: int, size: int) -> bytes:
        """*size* bytes at guest-virtual *vaddr*, across page boundaries. Every page is
        translated before any byte is read; physically contiguous pages are read at once.

        :raises PageFault: a page of the range is not mapped (the exception names the
            first unmapped address)
        :raises GuestMemoryError: a page maps outside guest RAM (device memory)
        """
        address = vaddr & _U64
        offset = address & (PAGE_SIZE - 1)
        if 0 < size <= PAGE_SIZE - offset:  # within one page: the common case, made short
            return self.phys.read(self._page(address) | offset, size)
        if size < 0:
            raise ValueError(f"negative read size {size}")
        runs: list[list[int]] = []  # [guest-physical start, bytes]
        remaining = size
        while remaining:
            offset = address & (PAGE_SIZE - 1)
            chunk = min(remaining, PAGE_SIZE - offset)
            gpa = self._page(address) | offset
            if runs and runs[-1][0] + runs[-1][1] == gpa:
                runs[-1][1] += chunk
            else:
                runs.append([gpa, chunk])
            address = (address + chunk) & _U64
            remaining -= chunk
        return b"".join(self.phys.read(gpa, length) for gpa, length in runs)

    def read_cstring(self, vaddr: int, limit: int = 4096) -> tuple[bytes, bool]:
        """The NUL-terminated string (``char *``) at guest-virtual *vaddr*, without its NUL.

        Reads page by page and never past the NUL, so a string ending just before an
        unmapped page reads fine.

        :param limit: the most bytes read
        :returns: (the bytes before the NUL, truncated) where truncated is True when none of
            the *limit* bytes was a NUL (the string is at least *limit* bytes long)
        :raises PageFault: the string runs into (or starts in) an unmapped page
        """
        out = bytearray()
        address = vaddr & _U64
        while len(out) < limit:
            chunk = min(limit - len(out), PAGE_SIZE - (address & (PAGE_SIZE - 1)))
            data = self.read(address, chunk)
            end = data.find(0)
            if end >= 0:
                out += data[:end]
                return bytes(out), False
            out += data
            address = (address + chunk) & _U64
        return bytes(out), True

    def read_u64(self, vaddr: int) -> int:
        """The little-endian ``__u64`` at guest-virtual *vaddr*.

        :raises PageFault: not mapped
        """
        return int.from_bytes(self.read(vaddr, 8), "little")

    def read_u32(self, vaddr: int) -> int:
        """The little-endian ``__u32`` at guest-virtual *vaddr*.

        :raises PageFault: not mapped
        """
        return int.from_bytes(self.read(vaddr, 4), "little")
