"""What the trap engine needs from a backend: a stopped-or-running guest it can drive.

The gdbstub backend implements it over QEMU's gdbstub (all-stop: a stop stops every vCPU).
Register dicts use GDB's x86-64 names: ``rax``..``r15``, ``rip``, ``eflags``, ``cs``, ``ss``,
``ds``, ``es``, ``fs``, ``gs``, ``fs_base``, ``gs_base``, ``k_gs_base``, ``cr0``, ``cr2``,
``cr3``, ``cr4``, ``efer``.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["TrapTarget"]


class TrapTarget(Protocol):
    """A guest whose vCPUs the trap engine can stop, inspect, change and resume."""

    #: vCPU indices (0-based, QEMU's cpu-index).
    vcpus: list[int]

    def read_regs(self, vcpu: int) -> dict[str, int]:
        """All registers of *vcpu* (the guest must be stopped)."""

    def write_state(self, vcpu: int, regs: dict[str, int]) -> None:
        """Write the GPRs, ``rip``, ``eflags``, ``cs`` and ``ss`` of *regs* to *vcpu* at once
        (one operation, so that a tracer dying midway leaves no half-written state)."""

    def write_efer(self, vcpu: int, value: int) -> None:
        """Write *vcpu*'s EFER."""

    def read_memory(self, vcpu: int, address: int, size: int) -> bytes:
        """Read *size* bytes at guest-virtual *address* through *vcpu*'s page tables."""

    def insert_breakpoint(self, address: int) -> None:
        """Stop any vCPU about to execute the instruction at guest-virtual *address*."""

    def remove_breakpoint(self, address: int) -> None:
        """Undo :meth:`insert_breakpoint`."""

    def resume(self) -> None:
        """Let every vCPU run (returns at once)."""

    def step(self, vcpu: int) -> None:
        """Execute one instruction on *vcpu* only, interrupts masked; returns stopped."""

    def wait_stop(self, timeout: float) -> int | None:
        """Wait up to *timeout* s for the guest to stop; return the vCPU that stopped it."""

    def interrupt(self) -> int | None:
        """Stop a running guest; return the vCPU reported (if any)."""

    def idt_base(self, vcpu: int) -> int:
        """Guest-virtual base address of *vcpu*'s IDT."""
