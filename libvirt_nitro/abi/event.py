"""Nitro events as Python objects, and filling one from a trap (:func:`fill_from_trap`).

An :class:`Event` wraps the bytes of one ``struct kvm_nitro_event`` (kept as
:attr:`Event.raw`) and exposes its fields as attributes and its registers as
``event.regs.<name>`` (``rax``, ``rip``, ``cr3``, ``lstar``, ``cs``...).
"""

from __future__ import annotations

import operator
import struct
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
    "EVENT_F_LONG_MODE",
    "EVENT_TYPE_NAMES",
    "fill_from_trap",
]

EVENT_SYSCALL: int = lib.KVM_NITRO_EVENT_SYSCALL
EVENT_SYSRET: int = lib.KVM_NITRO_EVENT_SYSRET
EVENT_SYSENTER: int = lib.KVM_NITRO_EVENT_SYSENTER
EVENT_SYSEXIT: int = lib.KVM_NITRO_EVENT_SYSEXIT
#: ``kvm_nitro_event.flags``: the trapped instruction ran in 64-bit code (CS.L); an entry
#: without it comes from a 32-bit process.
EVENT_F_LONG_MODE: int = lib.KVM_NITRO_EVENT_F_LONG_MODE
_ABI_VERSION: int = lib.KVM_NITRO_ABI_VERSION

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


def _struct_of(ctype: str, skip: tuple[str, ...] = ()) -> struct.Struct:
    """A ``struct`` format of the fixed-width fields of *ctype* (cffi's view of the
    header), in order, the fields *skip* as pad bytes; its size and every offset are
    asserted against cffi's."""
    fmt, offset = "<", 0
    for name, field in ffi.typeof(ctype).fields:
        assert field.offset == offset, (ctype, name)
        size = ffi.sizeof(field.type)
        if name in skip or field.type.kind == "array":
            fmt += f"{size}x"
        else:
            fmt += {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
        offset += size
    packed = struct.Struct(fmt)
    assert packed.size == ffi.sizeof(ctype), ctype
    return packed


#: The event's header (version, size, vcpu_id, type, flags, seq, timestamp_ns; pad0 and
#: the registers after it are not in it).
_HEAD = struct.Struct("<HHIHHxxxxQQ")
assert [(n, f.offset) for n, f in ffi.typeof("struct kvm_nitro_event").fields][:8] == [
    ("version", 0),
    ("size", 2),
    ("vcpu_id", 4),
    ("type", 8),
    ("flags", 10),
    ("pad0", 12),
    ("seq", 16),
    ("timestamp_ns", 24),
]
_REGS_OFFSET = ffi.offsetof("struct kvm_nitro_event", "regs")
_REGS = _struct_of("struct kvm_nitro_regs", skip=("pad",))
assert _HEAD.size == _REGS_OFFSET


class Regs(tuple):
    """The registers of an event (``struct kvm_nitro_regs``), read-only attributes
    (``regs.rax``...), unpacked once."""

    __slots__ = ()

    def as_dict(self) -> dict[str, int]:
        """``{name: value}`` for every register."""
        return dict(zip(REG_NAMES, self, strict=True))

    def __repr__(self) -> str:
        return f"<Regs rax={self.rax:#x} rip={self.rip:#x} cr3={self.cr3:#x}>"  # type: ignore[attr-defined]


for _index, _name in enumerate(REG_NAMES):
    setattr(Regs, _name, property(operator.itemgetter(_index), doc=f"``{_name}``"))


class Event:
    """One ``struct kvm_nitro_event``.

    :ivar raw: the bytes it was built from (a whole ring slot, or exactly the struct)
    :ivar record: what the event pipeline made of it (the task, the call, its decoded
        arguments and result: :class:`~libvirt_nitro.pipeline.SyscallRecord`), or None for
        an event that did not go through a pipeline
    :ivar version: ABI version (``__u16``)
    :ivar size: bytes of the struct the producer filled
    :ivar vcpu: vCPU index (``__u32``; also ``vcpu_id``)
    :ivar type: KVM_NITRO_EVENT_* (``__u16``)
    :ivar flags: KVM_NITRO_EVENT_F_* (``__u16``)
    :ivar seq: sequence number; gaps are losses
    :ivar timestamp_ns: CLOCK_MONOTONIC, ns
    :ivar regs: the registers (:class:`Regs`)
    """

    __slots__ = (
        "raw",
        "regs",
        "record",
        "version",
        "size",
        "vcpu",
        "type",
        "flags",
        "seq",
        "timestamp_ns",
    )

    def __init__(self, raw: bytes) -> None:
        """Wrap *raw*.

        :raises NitroAbiError: *raw* is shorter than its ``size`` field or than the
            version-1 header, or has an unknown version.
        """
        if len(raw) < 32:
            raise NitroAbiError(f"event of {len(raw)} bytes")
        self.raw = raw
        (
            self.version,
            self.size,
            self.vcpu,
            self.type,
            self.flags,
            self.seq,
            self.timestamp_ns,
        ) = _HEAD.unpack_from(raw)
        if self.version != _ABI_VERSION:
            raise NitroAbiError(f"event version {self.version}")
        if self.size > len(raw):
            raise NitroAbiError(f"event size {self.size} > {len(raw)} bytes given")
        buf = raw if len(raw) >= _EVENT_SIZE else bytes(raw) + bytes(_EVENT_SIZE - len(raw))
        self.regs = Regs(_REGS.unpack_from(buf, _REGS_OFFSET))
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

    @property
    def vcpu_id(self) -> int:
        """vCPU index (``__u32``), as :attr:`vcpu`."""
        return self.vcpu

    @property
    def type_name(self) -> str:
        """``"syscall"``, ``"sysret"``, ``"sysenter"`` or ``"sysexit"`` (else hex)."""
        return EVENT_TYPE_NAMES.get(self.type, f"{self.type:#x}")

    @property
    def direction(self) -> str:
        """``"enter"`` (SYSCALL, SYSENTER) or ``"exit"`` (SYSRET, SYSEXIT)."""
        return "exit" if self.type in _EXITS else "enter"

    def __repr__(self) -> str:
        return (
            f"<Event seq={self.seq} vcpu={self.vcpu} {self.type_name} "
            f"rax={self.regs.rax:#x} rip={self.regs.rip:#x}>"
        )


_EXITS = frozenset({EVENT_SYSRET, EVENT_SYSEXIT})

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
