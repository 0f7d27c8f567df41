"""Nitro events as Python objects, and filling one from a trap (:func:`fill_from_trap`).

An :class:`Event` wraps the bytes of one ``struct kvm_nitro_event`` (kept as
:attr:`Event.raw`) and exposes its fields as attributes and its registers as
``event.regs.<name>`` (``rax``, ``rip``, ``cr3``, ``lstar``, ``cs``...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import NitroAbiError
from ..ioctl import ffi, lib

__all__ = [
    "Event",
    "Regs",
    "REG_NAMES",
    "EVENT_SYSCALL",
    "EVENT_SYSRET",
    "EVENT_SYSENTER",
    "EVENT_SYSEXIT",
    "EVENT_TYPE_NAMES",
    "fill_from_trap",
]

EVENT_SYSCALL: int = lib.KVM_NITRO_EVENT_SYSCALL
EVENT_SYSRET: int = lib.KVM_NITRO_EVENT_SYSRET
EVENT_SYSENTER: int = lib.KVM_NITRO_EVENT_SYSENTER
EVENT_SYSEXIT: int = lib.KVM_NITRO_EVENT_SYSEXIT

#: KVM_NITRO_EVENT_* -> instruction name.
EVENT_TYPE_NAMES = {
    EVENT_SYSCALL: "syscall",
    EVENT_SYSRET: "sysret",
    EVENT_SYSENTER: "sysenter",
    EVENT_SYSEXIT: "sysexit",
}

#: The register names of struct kvm_nitro_regs (padding left out), in ABI order.
REG_NAMES: tuple[str, ...] = tuple(
    name for name, _ in ffi.typeof("struct kvm_nitro_regs").fields if name != "pad"
)
_EVENT_SIZE = ffi.sizeof("struct kvm_nitro_event")
_GPRS = tuple(REG_NAMES[: REG_NAMES.index("rflags") + 1])
_SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")


class Regs:
    """The registers of an event (``struct kvm_nitro_regs``), read-only attributes."""

    __slots__ = ("_c",)

    def __init__(self, c: Any) -> None:
        self._c = c

    def __getattr__(self, name: str) -> int:
        if name in REG_NAMES:
            return getattr(self._c, name)
        raise AttributeError(f"no register {name!r}")

    def as_dict(self) -> dict[str, int]:
        """``{name: value}`` for every register."""
        return {name: getattr(self._c, name) for name in REG_NAMES}

    def __repr__(self) -> str:
        return f"<Regs rax={self._c.rax:#x} rip={self._c.rip:#x} cr3={self._c.cr3:#x}>"


class Event:
    """One ``struct kvm_nitro_event``.

    :ivar raw: the bytes it was built from (a whole ring slot, or exactly the struct)
    :ivar record: what the event pipeline made of it (the task, the call, its decoded
        arguments and result: :class:`~libvirt_nitro.pipeline.SyscallRecord`), or None for
        an event that did not go through a pipeline
    """

    __slots__ = ("raw", "_c", "regs", "record")

    def __init__(self, raw: bytes) -> None:
        """Wrap *raw*.

        :raises NitroAbiError: *raw* is shorter than its ``size`` field or than the
            version-1 header, or has an unknown version.
        """
        if len(raw) < 32:
            raise NitroAbiError(f"event of {len(raw)} bytes")
        self.raw = raw
        buf = raw if len(raw) >= _EVENT_SIZE else raw + bytes(_EVENT_SIZE - len(raw))
        c = ffi.from_buffer("struct kvm_nitro_event *", buf)
        if c.version != lib.KVM_NITRO_ABI_VERSION:
            raise NitroAbiError(f"event version {c.version}")
        if c.size > len(raw):
            raise NitroAbiError(f"event size {c.size} > {len(raw)} bytes given")
        self._c = c
        self.regs = Regs(c.regs)
        self.record: Any = None

    @classmethod
    def build(cls, fill: Callable[[Any], None]) -> Event:
        """A new event whose ``struct kvm_nitro_event *`` *fill* writes (version and size
        are set first), for producers in this process."""
        c = ffi.new("struct kvm_nitro_event *")
        c.version = lib.KVM_NITRO_ABI_VERSION
        c.size = _EVENT_SIZE
        fill(c)
        return cls(bytes(ffi.buffer(c)))

    version = property(lambda self: self._c.version, doc="ABI version (__u16).")
    size = property(lambda self: self._c.size, doc="Bytes of the struct the producer filled.")
    vcpu = property(lambda self: self._c.vcpu_id, doc="vCPU index (__u32).")
    vcpu_id = vcpu
    type = property(lambda self: self._c.type, doc="KVM_NITRO_EVENT_* (__u16).")
    flags = property(lambda self: self._c.flags, doc="KVM_NITRO_EVENT_F_* (__u16).")
    seq = property(lambda self: self._c.seq, doc="Sequence number; gaps are losses.")
    timestamp_ns = property(lambda self: self._c.timestamp_ns, doc="CLOCK_MONOTONIC, ns.")

    @property
    def type_name(self) -> str:
        """``"syscall"``, ``"sysret"``, ``"sysenter"`` or ``"sysexit"`` (else hex)."""
        return EVENT_TYPE_NAMES.get(self.type, f"{self.type:#x}")

    @property
    def direction(self) -> str:
        """``"enter"`` (SYSCALL, SYSENTER) or ``"exit"`` (SYSRET, SYSEXIT)."""
        return "exit" if self.type in (EVENT_SYSRET, EVENT_SYSEXIT) else "enter"

    def __repr__(self) -> str:
        return (
            f"<Event seq={self.seq} vcpu={self.vcpu} {self.type_name} "
            f"rax={self.regs.rax:#x} rip={self.regs.rip:#x}>"
        )


#: GDB register names (the gdbstub's) that differ from struct kvm_nitro_regs'.
_GDB_NAMES = {"rflags": "eflags", "kernel_gs_base": "k_gs_base"}


def fill_from_trap(ev: Any, trap: Any) -> None:
    """Fill ``struct kvm_nitro_event *`` *ev* from a
    :class:`~libvirt_nitro.trap.engine.TrapEvent` (registers by GDB name, MSRs as the
    engine learned them; EFER is the guest's own view, SCE as the guest set it)."""
    ev.vcpu_id = trap.vcpu
    ev.type = EVENT_SYSCALL if trap.kind == "syscall" else EVENT_SYSRET
    ev.flags = (
        (lib.KVM_NITRO_EVENT_F_LONG_MODE if trap.long_mode else 0)
        | (lib.KVM_NITRO_EVENT_F_REX_W if trap.rex_w and trap.kind == "sysret" else 0)
        | (lib.KVM_NITRO_EVENT_F_RF_CLEARED if trap.rf_cleared else 0)
    )
    ev.timestamp_ns = trap.timestamp_ns
    regs, out, facts = trap.regs, ev.regs, trap.facts
    for name in _GPRS + ("cr0", "cr2", "cr3", "cr4", "fs_base", "gs_base", "kernel_gs_base"):
        setattr(out, name, regs.get(_GDB_NAMES.get(name, name), 0))
    for name in _SEGMENTS:
        setattr(out, name, regs.get(name, 0))
    out.efer = facts.efer
    out.star = facts.star
    out.lstar = facts.lstar or 0
    out.cstar = facts.cstar or 0
    out.sfmask = facts.fmask
