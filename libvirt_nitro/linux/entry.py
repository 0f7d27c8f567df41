"""Where a Linux x86-64 guest kernel returns to user mode with SYSRET.

With EFER.SCE cleared, SYSRET raises #UD, and the kernel executes SYSRETQ with the user
stack already loaded: the #UD frame then lands on the user stack and Linux panics
(DESIGN.md §4). So before clearing SCE the tracer must know every SYSRET the kernel can
execute, and catch it there. Linux has two, both right after a SWAPGS: ``entry_SYSRETQ``
in ``entry_SYSCALL_64`` (arch/x86/entry/entry_64.S) and ``entry_SYSRETL_compat`` in
``entry_SYSCALL_compat`` (entry_64_compat.S); between SWAPGS and SYSRET stable kernels
have ``CLEAR_CPU_BUFFERS`` (a VERW, or a jump over it). Both live in ``.entry.text``,
which also holds the exception entry stubs such as the #UD handler, so they are found by
scanning the code around that handler, without symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SysretSite", "find_sysret_sites", "SCAN_RADIUS", "SWAPGS", "SYSRET"]

SWAPGS = b"\x0f\x01\xf8"
SYSRET = b"\x0f\x07"
#: How far around the #UD handler to look (bytes each side): .entry.text is ~16 KiB.
SCAN_RADIUS = 0x10000
#: The most bytes seen between SWAPGS and SYSRET (a 7-byte VERW or a jump over it).
MAX_GAP = 16


@dataclass(frozen=True)
class SysretSite:
    """A SYSRET instruction: its guest-virtual address and form (SYSRETQ has REX.W)."""

    address: int
    rex_w: bool


def find_sysret_sites(code: bytes, base: int) -> list[SysretSite]:
    """The SYSRET instructions preceded by SWAPGS within :data:`MAX_GAP` bytes in *code*
    (guest memory read from guest-virtual address *base*)."""
    sites = []
    start = code.find(SYSRET)
    while start >= 0:
        window = code[max(0, start - MAX_GAP - 1) : start]
        if SWAPGS in window:
            rex_w = start > 0 and code[start - 1] == 0x48
            address = base + start - (1 if rex_w else 0)
            sites.append(SysretSite(address, rex_w))
        start = code.find(SYSRET, start + 1)
    return sites
