"""libvirt_nitro.memory: guest-physical memory out of QEMU, guest-virtual through the page tables.

Two parts: pure units (the monitor-output parsers on QEMU 7.2 text as measured, and the
page-table walker on a synthetic page-table image in a bytes-backed physical memory); and
the real TCG test guest, where every read is checked against an independent reader — the
QEMU monitor's ``xp`` for guest-physical memory, the gdbstub's ``m`` packet (QEMU's own
page-table walk) for guest-virtual memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from libvirt_nitro.domain import hmp, resolve
from libvirt_nitro.errors import GdbstubErrorReply, GuestMemoryError, NitroError, PageFault
from libvirt_nitro.gdbstub.gdbtarget import GdbTarget
from libvirt_nitro.gdbstub.rsp import RspClient
from libvirt_nitro.gdbstub.session import GdbstubSession
from libvirt_nitro.linux import syscall_number
from libvirt_nitro.memory import (
    CR4_LA57,
    QemuPhysicalMemory,
    VirtualMemory,
    translate,
    walk,
)
from libvirt_nitro.memory.physmem import parse_flatview, parse_gpa2hva, ram_ranges
from libvirt_nitro.x86 import IDT_GATE_SIZE, VECTOR_UD, idt_gate_offset
from tests.tracing import syscalls_enabled, trap_during

OPENAT = syscall_number("openat")
MARKER = b"/nitro-marker\0"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# ---------------------------------------------------------------- monitor parsers (units)

#: ``info mtree -f`` of the test guest under QEMU 7.2 (pc-i440fx-7.2, 256 MiB), abridged.
MTREE = """\
FlatView #1
 AS "cpu-smm-1", root: memory
 Root memory region: memory
  0000000000000000-00000000000c2fff (prio 0, ram): pc.ram
  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios

FlatView #2
 AS "I/O", root: io
 Root memory region: io
  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan

FlatView #4
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 AS "cpu-memory-1", root: system
 Root memory region: system
  0000000000000000-00000000000c2fff (prio 0, ram): pc.ram
  00000000000c3000-00000000000e7fff (prio 0, rom): pc.ram @00000000000c3000
  00000000000e8000-00000000000effff (prio 0, ram): pc.ram @00000000000e8000
  00000000000f0000-00000000000fffff (prio 0, rom): pc.ram @00000000000f0000
  0000000000100000-000000000fffffff (prio 0, ram): pc.ram @0000000000100000
  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic
  00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi
  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios

"""


def test_flatview_of_the_system_address_space_is_parsed():
    ranges = parse_flatview(MTREE)
    assert [(r.start, r.type, r.name) for r in ranges][:2] == [
        (0, "ram", "pc.ram"),
        (0xC3000, "rom", "pc.ram"),
    ]
    assert len(ranges) == 8
    assert ranges[4].last == 0xFFFFFFF and ranges[4].offset == 0x100000
    assert ranges[5].type == "i/o" and ranges[5].name == "ioapic" and ranges[5].offset == 0
    # RAM and read-only aliases of RAM; not device memory, not the firmware ROM.
    kept = ram_ranges(ranges)
    assert [r.start for r in kept] == [0, 0xC3000, 0xE8000, 0xF0000, 0x100000]


def test_flatview_missing_is_a_monitor_error():
    from libvirt_nitro.errors import QemuMonitorError

    with pytest.raises(QemuMonitorError, match='no flat view of the "memory"'):
        parse_flatview(MTREE.split("FlatView #4")[0])


def test_gpa2hva_replies_are_parsed_or_refused():
    from libvirt_nitro.errors import QemuMonitorError

    reply = "Host virtual address for 0x100000 (pc.ram) is 0x7fa2fff00000\r\n"
    assert parse_gpa2hva(reply, 0x100000) == 0x7FA2FFF00000
    for text in ("Memory at address 0xfec00000 is not RAM", "No memory is mapped at address 0x10"):
        with pytest.raises(QemuMonitorError, match="gpa2hva"):
            parse_gpa2hva(text, 0xFEC00000)
    with pytest.raises(QemuMonitorError):  # an answer about another address
        parse_gpa2hva(reply, 0x200000)


# ------------------------------------------------------- page-table walker (pure units)


class FakePhysicalMemory:
    """Guest-physical memory backed by a bytearray (RAM is [0, size)), with a page-table
    builder: tables are allocated from the top down, data pages are chosen by the test."""

    def __init__(self, size: int = 4 * MiB) -> None:
        self.ram = bytearray(size)
        self._next_table = size
        self.reads = 0
        self.pml_top = self.table()

    def read(self, gpa: int, size: int) -> bytes:
        self.reads += 1
        if gpa < 0 or gpa + size > len(self.ram):
            raise GuestMemoryError(gpa, size)
        return bytes(self.ram[gpa : gpa + size])

    def table(self) -> int:
        self._next_table -= 4 * KiB
        return self._next_table

    def entry_at(self, table: int, index: int) -> int:
        return int.from_bytes(self.ram[table + 8 * index : table + 8 * index + 8], "little")

    def set_entry(self, table: int, index: int, value: int) -> None:
        self.ram[table + 8 * index : table + 8 * index + 8] = value.to_bytes(8, "little")

    def map(self, vaddr: int, paddr: int, page: int = 4 * KiB, levels: int = 4) -> None:
        """Map *vaddr* to *paddr* with a page of *page* bytes (present + writable)."""
        leaf_level = {4 * KiB: 1, 2 * MiB: 2, GiB: 3}[page]
        table = self.pml_top
        for level in range(levels, leaf_level, -1):
            index = (vaddr >> (12 + 9 * (level - 1))) & 0x1FF
            entry = self.entry_at(table, index)
            if not entry & 1:
                entry = self.table() | 0x3
                self.set_entry(table, index, entry)
            table = entry & 0x000F_FFFF_FFFF_F000
        index = (vaddr >> (12 + 9 * (leaf_level - 1))) & 0x1FF
        self.set_entry(table, index, paddr | 0x3 | (0x80 if leaf_level > 1 else 0))

    def entry_address(self, vaddr: int, level: int, levels: int = 4) -> tuple[int, int]:
        """(table, index) of the entry of *level* on *vaddr*'s walk (which must reach it)."""
        table = self.pml_top
        for current in range(levels, level, -1):
            index = (vaddr >> (12 + 9 * (current - 1))) & 0x1FF
            table = self.entry_at(table, index) & 0x000F_FFFF_FFFF_F000
        return table, (vaddr >> (12 + 9 * (level - 1))) & 0x1FF


USER = 0x0000_7F12_3456_7000
KERNEL = 0xFFFF_FFFF_8100_0000


def test_4k_pages_translate_with_the_offset_kept():
    phys = FakePhysicalMemory()
    phys.map(USER, 0x5000)
    phys.map(KERNEL, 0x9000)
    assert translate(phys, phys.pml_top, USER + 0x123) == 0x5123
    assert translate(phys, phys.pml_top, KERNEL + 0xFFF) == 0x9FFF
    assert walk(phys, phys.pml_top, USER) == (0x5000, 4 * KiB)


def test_2m_and_1g_pages_translate_and_the_pat_bit_is_not_address():
    phys = FakePhysicalMemory()
    phys.map(0x4000_0000, 0x20_0000, page=2 * MiB)
    phys.map(0x80_0000_0000, 0x1_4000_0000, page=GiB)
    assert walk(phys, phys.pml_top, 0x4012_3456) == (0x32_3456, 2 * MiB)
    assert walk(phys, phys.pml_top, 0x80_1234_5678) == (0x1_5234_5678, GiB)
    # Bit 12 of a PDE mapping a 2 MiB page is PAT: the translation ignores it.
    table, index = phys.entry_address(0x4000_0000, 2)
    phys.set_entry(table, index, phys.entry_at(table, index) | 1 << 12)
    assert translate(phys, phys.pml_top, 0x4000_0010) == 0x20_0010


def test_5_level_paging_walks_the_pml5():
    phys = FakePhysicalMemory()
    high = 0x00FF_1234_5678_9000  # canonical only with 57-bit addresses
    phys.map(high, 0x7000, levels=5)
    assert translate(phys, phys.pml_top, high + 8, la57=True) == 0x7008
    with pytest.raises(PageFault, match="not canonical") as fault:
        translate(phys, phys.pml_top, high, la57=False)
    assert fault.value.level == 4
    kernel5 = 0xFF11_0000_0000_0000
    phys.map(kernel5, 0x8000, levels=5)
    assert translate(phys, phys.pml_top, kernel5, la57=True) == 0x8000
    with pytest.raises(PageFault, match="not canonical for 5-level"):
        translate(phys, phys.pml_top, 0x0100_0000_0000_0000, la57=True)


@pytest.mark.parametrize("levels", [4, 5])
def test_not_present_is_a_page_fault_at_each_level(levels):
    vaddr = USER
    for level in range(levels, 0, -1):
        phys = FakePhysicalMemory()
        phys.map(vaddr, 0x5000, levels=levels)
        assert translate(phys, phys.pml_top, vaddr, la57=levels == 5) == 0x5000
        table, index = phys.entry_address(vaddr, level, levels)
        phys.set_entry(table, index, phys.entry_at(table, index) & ~1)
        with pytest.raises(PageFault) as fault:
            translate(phys, phys.pml_top, vaddr + 0x10, la57=levels == 5)
        assert fault.value.level == level
        assert fault.value.vaddr == vaddr + 0x10
        assert f"{vaddr + 0x10:#x}" in str(fault.value)


def test_reserved_page_size_bit_in_the_pml4_is_a_page_fault():
    phys = FakePhysicalMemory()
    phys.map(USER, 0x5000)
    table, index = phys.entry_address(USER, 4)
    phys.set_entry(table, index, phys.entry_at(table, index) | 0x80)
    with pytest.raises(PageFault, match="reserved PS") as fault:
        translate(phys, phys.pml_top, USER)
    assert fault.value.level == 4


def test_pcid_and_no_flush_bits_of_cr3_are_not_address():
    phys = FakePhysicalMemory()
    phys.map(USER, 0x5000)
    assert translate(phys, phys.pml_top | 0xABC | 1 << 63, USER) == 0x5000


def test_page_tables_outside_ram_are_a_guest_memory_error():
    phys = FakePhysicalMemory()
    with pytest.raises(GuestMemoryError, match="0x400007f0"):  # PML4 entry 0xfe of the CR3
        translate(phys, 0x4000_0000, USER)
    table, index = phys.entry_address(USER, 4)
    phys.set_entry(table, index, 0x8000_0000 | 1)
    with pytest.raises(GuestMemoryError) as error:
        translate(phys, phys.pml_top, USER)
    assert not isinstance(error.value, PageFault)


def test_reads_cross_pages_that_are_not_physically_contiguous():
    phys = FakePhysicalMemory()
    phys.map(USER, 0x9000)
    phys.map(USER + 0x1000, 0x3000)  # the next virtual page lies *below* in physical memory
    phys.map(USER + 0x2000, 0x4000)  # ...and this one right after that one
    phys.ram[0x9FF0:0xA000] = bytes(range(16))
    phys.ram[0x3000:0x5000] = bytes(range(16, 32)) * 512
    memory = VirtualMemory(phys, phys.pml_top)
    data = memory.read(USER + 0xFF0, 0x1020)
    assert data[:16] == bytes(range(16)) and data[16:32] == bytes(range(16, 32))
    assert len(data) == 0x1020 and data[-16:] == bytes(range(16, 32))
    assert memory.walks == 3 and memory.hits == 0
    assert memory.read(USER + 0x1FFC, 8) == memory.read(USER + 0x1FFC, 8)
    assert memory.walks == 3 and memory.hits == 4  # warm: no walk, one pread per run
    assert memory.read_u32(USER + 0xFFE) == 0x11100F0E
    assert memory.read_u64(USER + 0x1000) == int.from_bytes(bytes(range(16, 24)), "little")
    assert memory.read(USER, 0) == b""


def test_a_read_into_an_unmapped_page_faults_naming_that_page():
    phys = FakePhysicalMemory()
    phys.map(USER, 0x5000)
    memory = VirtualMemory(phys, phys.pml_top)
    reads = phys.reads
    with pytest.raises(PageFault) as fault:
        memory.read(USER + 0xFF8, 16)
    assert fault.value.vaddr == USER + 0x1000 and fault.value.level == 1
    assert phys.reads - reads == 8  # two walks, and no data read before the fault
    with pytest.raises(PageFault):
        VirtualMemory(phys, phys.pml_top).read(0x1000, 1)


def test_cstrings_stop_at_the_nul_before_an_unmapped_page_or_at_the_limit():
    phys = FakePhysicalMemory()
    phys.map(USER, 0x5000)
    phys.map(USER + 0x1000, 0x7000)
    phys.ram[0x5FFA:0x6000] = b"/nitro"
    phys.ram[0x7000:0x7008] = b"-marker\0"
    memory = VirtualMemory(phys, phys.pml_top)
    assert memory.read_cstring(USER + 0xFFA) == (b"/nitro-marker", False)
    assert memory.read_cstring(USER + 0xFFA, limit=13) == (b"/nitro-marker", True)
    assert memory.read_cstring(USER + 0xFFA, limit=14) == (b"/nitro-marker", False)
    assert memory.read_cstring(USER + 0xFFA, limit=4) == (b"/nit", True)
    # A string ending on the last byte of the mapping: the unmapped page is never touched.
    phys.ram[0x7FFC:0x8000] = b"end\0"
    assert memory.read_cstring(USER + 0x1FFC) == (b"end", False)
    phys.ram[0x7FFC:0x8000] = b"abcd"
    with pytest.raises(PageFault) as fault:
        memory.read_cstring(USER + 0x1FFC)
    assert fault.value.vaddr == USER + 0x2000


def test_the_translation_cache_is_bounded_and_flushable():
    phys = FakePhysicalMemory()
    for page in range(VirtualMemory.CACHE_PAGES + 1):
        phys.map(USER + page * 4 * KiB, 0x10000 + page * 4 * KiB)
    memory = VirtualMemory(phys, phys.pml_top)
    for page in range(VirtualMemory.CACHE_PAGES + 1):
        memory.read(USER + page * 4 * KiB, 1)
    memory.read(USER, 1)  # the oldest translation was dropped
    assert memory.walks == VirtualMemory.CACHE_PAGES + 2
    memory.flush()
    memory.read(USER + 4 * KiB, 1)
    assert memory.walks == VirtualMemory.CACHE_PAGES + 3


# ---------------------------------------------------------------- the real guest


@pytest.fixture(scope="module")
def phys(tcg_guest) -> Iterator[QemuPhysicalMemory]:
    """Guest-physical memory of the test guest, mapped from its QEMU monitor."""
    with QemuPhysicalMemory.from_domain(tcg_guest.dom, resolve(tcg_guest.dom).pid) as memory:
        yield memory


@contextmanager
def gdbstub(dom: Any) -> Iterator[tuple[RspClient, GdbTarget]]:
    """The stub of *dom*, connected (the guest stopped); always detached and closed after."""
    session = GdbstubSession.start(dom, resolve(dom).pid, dom.UUIDString())
    try:
        client = RspClient(str(session.socket_path))
        try:
            yield client, GdbTarget(client)
        finally:
            client.detach()
    finally:
        session.stop()


_XP = re.compile(r"^[0-9a-f]+:((?: 0x[0-9a-f]{2})+)", re.MULTILINE)


def monitor_xp(dom: Any, gpa: int, size: int) -> bytes:
    """*size* bytes of guest-physical memory as the QEMU monitor's ``xp`` shows them."""
    text = hmp(dom, f"xp /{size}bx {gpa:#x}")
    return bytes(int(byte, 16) for line in _XP.findall(text) for byte in line.split())


def test_physical_reads_match_the_monitor_in_every_ram_region(tcg_guest, phys):
    """Flat-view regions QEMU maps separately (RAM below 0xc3000, its read-only alias at
    0xc3000, RAM above 1 MiB), the boundary between two of them, the end of RAM and the
    kernel's live top-level page table, read while the guest is paused (so nothing moves)."""
    assert phys.ranges and phys.ranges[0].gpa == 0
    end = phys.ranges[-1].end
    assert end == tcg_guest.dom.maxMemory() * KiB  # 256 MiB, from 0, in one linear range
    cr3 = int(re.search(r"CR3=([0-9a-f]+)", hmp(tcg_guest.dom, "info registers"))[1], 16)
    pml4_kernel_half = (cr3 & ~0xFFF) + 0x800
    tcg_guest.dom.suspend()
    try:
        for gpa in (0x0, 0xC2FC0, 0xC3000, 0xF0000, 0x100000, end - 64, pml4_kernel_half):
            assert phys.read(gpa, 64) == monitor_xp(tcg_guest.dom, gpa, 64), hex(gpa)
    finally:
        tcg_guest.dom.resume()
    # Not a comparison of zeros: the kernel half of the PML4 holds present entries.
    assert any(b & 1 for b in phys.read(pml4_kernel_half, 2048)[::8])


def test_non_ram_physical_addresses_raise_naming_the_address(phys):
    end = phys.ranges[-1].end
    with pytest.raises(GuestMemoryError, match=f"{0xFEC00000:#x}"):
        phys.read(0xFEC00000, 4)  # the I/O APIC: device memory, not RAM
    with pytest.raises(GuestMemoryError, match=f"{end:#x}"):
        phys.read(end - 2, 4)  # runs off the end of RAM
    with pytest.raises(GuestMemoryError, match="0x1000000000"):
        phys.read(1 << 36, 1)


def test_kernel_virtual_reads_match_the_gdbstub(tcg_guest, phys):
    """The IDT, the #UD handler, and reads across page boundaries, as vCPU 0 sees them."""
    with gdbstub(tcg_guest.dom) as (client, target):
        for vcpu in target.vcpus:
            regs = target.read_regs(vcpu)
            memory = VirtualMemory(phys, regs["cr3"], la57=bool(regs["cr4"] & CR4_LA57))
            idt = target.idt_base(vcpu)
            assert idt == 0xFFFF_FE00_0000_0000  # the cpu_entry_area's read-only IDT
            assert memory.read(idt, 4096) == target.read_memory(vcpu, idt, 4096)
            gate = memory.read(idt + VECTOR_UD * IDT_GATE_SIZE, IDT_GATE_SIZE)
            handler = idt_gate_offset(gate)
            assert handler >> 47 == 0x1FFFF  # kernel text
            around = memory.read(handler - 128, 256)
            assert around == target.read_memory(vcpu, handler - 128, 256)
            # Page crossings: the IDT page into the next, and inside kernel text.
            for start in (idt + 4096 - 100, (handler & ~0xFFF) + 4096 - 37):
                assert memory.read(start, 200) == target.read_memory(vcpu, start, 200), hex(start)
            assert memory.read_u64(handler) == int.from_bytes(around[128:136], "little")


def test_user_string_at_a_trap_matches_the_gdbstub(tcg_guest, phys):
    """At an openat entry of the workload, its path pointer read through the event's CR3
    gives what the stub reads through the stopped vCPU: the marker path; 0x1000 is mapped
    for neither."""
    seen: list[dict[str, Any]] = []

    def on_trap(target, event) -> None:
        regs = event.regs
        if event.kind != "syscall" or regs["rax"] != OPENAT:
            return
        memory = VirtualMemory(phys, regs["cr3"], la57=bool(regs["cr4"] & CR4_LA57))
        record: dict[str, Any] = {
            "stub": target.read_memory(event.vcpu, regs["rsi"], len(MARKER)),
            "ours": memory.read(regs["rsi"], len(MARKER)),
            "cstring": memory.read_cstring(regs["rsi"], 256),
        }
        try:
            memory.read(0x1000, 8)
        except PageFault as fault:
            record["fault"] = fault
        try:
            target.read_memory(event.vcpu, 0x1000, 8)
        except GdbstubErrorReply as refused:
            record["stub_fault"] = refused
        seen.append(record)

    result = trap_during(tcg_guest, on_trap, "open", "/nitro-marker")
    assert result.exit_code == 0
    assert syscalls_enabled(tcg_guest.dom)
    marker = [r for r in seen if r["stub"] == MARKER]
    assert marker, f"no openat of the marker among {[r['stub'] for r in seen]}"
    for record in seen:  # every openat of any process: the same bytes both ways
        assert record["ours"] == record["stub"]
    for record in marker:
        assert record["cstring"] == (MARKER[:-1], False)
        assert record["fault"].vaddr == 0x1000 and isinstance(record["fault"], NitroError)
        assert "stub_fault" in record
