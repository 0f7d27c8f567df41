"""The trap engine's :class:`~libvirt_nitro.trap.target.TrapTarget` over QEMU's gdbstub.

GDB thread ids are QEMU's cpu-index + 1. Register offsets come from the stub's target
description. A register write (:meth:`GdbTarget.write_state`) is one ``G`` packet holding
the ``g`` layout up to ``ss`` (rax..r15, rip, eflags, cs, ss): QEMU applies it within one
packet, so it is atomic for anyone else on the guest, and it stops before the control
registers (whose writes would flush QEMU's TLB).
"""

from __future__ import annotations

import re

from ..errors import GdbstubError
from .rsp import RspClient

__all__ = ["GdbTarget"]

_IDT = re.compile(r"IDT=\s*([0-9a-fA-F]+)")


class GdbTarget:
    """A guest driven through an :class:`RspClient` (the guest stops when it connects)."""

    def __init__(self, client: RspClient):
        self.client = client
        self.description = client.target_description()
        self._efer = self.description["efer"]
        end = self.description["ss"].end
        #: The registers one write_state() writes: the 'g' layout up to ss.
        self._state_names = {r.name for r in self.description.registers if r.end <= end}
        self._threads = client.threads()
        self.vcpus = [thread - 1 for thread in self._threads]
        self._last_g: dict[int, bytes] = {}

    def read_regs(self, vcpu: int) -> dict[str, int]:
        """All registers of *vcpu*, by GDB name (one ``g``)."""
        g = self.client.read_registers(vcpu + 1)
        self._last_g[vcpu] = g
        return self.description.decode(g)

    def write_state(self, vcpu: int, regs: dict[str, int]) -> None:
        """Write rax..r15, rip, eflags, cs and ss in one ``G`` (see the module doc)."""
        base = self._last_g.get(vcpu) or self.client.read_registers(vcpu + 1)
        values = {name: value for name, value in regs.items() if name in self._state_names}
        data = self.description.encode_prefix(values, base, upto="ss")
        self.client.write_registers(data, vcpu + 1)
        self._last_g.pop(vcpu, None)

    def write_efer(self, vcpu: int, value: int) -> None:
        """Write *vcpu*'s EFER (one ``P``)."""
        size = self._efer.bitsize // 8
        self.client.write_register(self._efer.regnum, value.to_bytes(size, "little"), vcpu + 1)
        self._last_g.pop(vcpu, None)

    def read_memory(self, vcpu: int, address: int, size: int) -> bytes:
        """Guest-virtual memory through *vcpu*'s page tables."""
        self.client.select_thread(vcpu + 1, "g")
        return self.client.read_memory(address, size)

    def insert_breakpoint(self, address: int) -> None:
        """A hardware breakpoint (``Z1``): under TCG the same as a software one, and under
        KVM it does not write int3 into guest memory."""
        self.client.insert_breakpoint(address, kind=1, type=1)

    def remove_breakpoint(self, address: int) -> None:
        """Undo :meth:`insert_breakpoint` (``z1``)."""
        self.client.remove_breakpoint(address, kind=1, type=1)

    def resume(self) -> None:
        """``vCont;c``: every vCPU runs."""
        self._last_g.clear()
        self.client.resume()

    def step(self, vcpu: int) -> None:
        """Single-step *vcpu* only (QEMU masks interrupts while stepping)."""
        self._last_g.clear()
        stop = self.client.step(vcpu + 1)
        if stop.thread is not None and stop.thread != vcpu + 1:
            raise GdbstubError(f"stepping vCPU {vcpu} stopped vCPU {stop.thread - 1} instead")

    def wait_stop(self, timeout: float) -> int | None:
        """The vCPU of the next stop, or None after *timeout* s."""
        stop = self.client.wait_stop(timeout)
        if stop is None:
            return None
        self._last_g.clear()
        return (stop.thread or 1) - 1

    def interrupt(self) -> int | None:
        """Stop the running guest; the vCPU QEMU names in its stop reply."""
        stop = self.client.interrupt()
        self._last_g.clear()
        return (stop.thread or 1) - 1

    def idt_base(self, vcpu: int) -> int:
        """From the monitor's ``info registers`` (the stub has no IDTR): Linux shares one
        IDT between CPUs, so the monitor's current CPU tells it for all."""
        match = _IDT.search(self.client.monitor("info registers"))
        if not match:
            raise GdbstubError("the QEMU monitor's 'info registers' shows no IDT")
        return int(match.group(1), 16)
