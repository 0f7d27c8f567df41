"""The request structs of kvm_nitro.h, filled as the kernel wants them.

Every builder returns a new cffi ``struct ... *`` with ``version``/``size`` set (where the
struct has them) and every other byte zero unless given: the kernel rejects a request
whose padding or reserved bytes are not zero (EINVAL), and an unknown version (EPROTO).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..ioctl import ffi, lib

__all__ = [
    "TRAP_SYSCALL",
    "TRAP_SYSRET",
    "TRAP_SYSENTER",
    "TRAP_SYSEXIT",
    "TRAP_ALL",
    "DELIVERY_ASYNC",
    "DELIVERY_SYNC",
    "attach_request",
    "trap_config",
    "eventfd_request",
    "continue_request",
    "trap_names",
]

TRAP_SYSCALL: int = lib.KVM_NITRO_TRAP_SYSCALL
TRAP_SYSRET: int = lib.KVM_NITRO_TRAP_SYSRET
TRAP_SYSENTER: int = lib.KVM_NITRO_TRAP_SYSENTER
TRAP_SYSEXIT: int = lib.KVM_NITRO_TRAP_SYSEXIT
TRAP_ALL: int = lib.KVM_NITRO_TRAP_ALL
DELIVERY_ASYNC: int = lib.KVM_NITRO_DELIVERY_ASYNC
DELIVERY_SYNC: int = lib.KVM_NITRO_DELIVERY_SYNC

_TRAP_NAMES = (
    (TRAP_SYSCALL, "SYSCALL"),
    (TRAP_SYSRET, "SYSRET"),
    (TRAP_SYSENTER, "SYSENTER"),
    (TRAP_SYSEXIT, "SYSEXIT"),
)
_MAX_SLOTS = 1 << 16  # the kernel's NITRO_MAX_SLOTS


def trap_names(traps: int) -> list[str]:
    """The instruction names of the ``KVM_NITRO_TRAP_*`` bits in *traps*."""
    return [name for bit, name in _TRAP_NAMES if traps & bit]


def attach_request(pidfd: int = -1, vm_fd: int = -1) -> Any:
    """``struct kvm_nitro_attach *``: the VMM named by *pidfd* and the number of its
    kvm-vm fd *vm_fd* (-1: its only VM); both -1 when issued on a VM fd."""
    req = ffi.new("struct kvm_nitro_attach *")
    req.version = lib.KVM_NITRO_ABI_VERSION
    req.size = ffi.sizeof(req[0])
    req.pidfd = pidfd
    req.vm_fd = vm_fd
    return req


def trap_config(
    traps: int = TRAP_ALL,
    *,
    delivery: int = DELIVERY_ASYNC,
    syscalls: Iterable[int] | None = None,
    above: bool = False,
    ring_slots: int = 0,
) -> Any:
    """``struct kvm_nitro_trap_config *``: trap *traps* (``TRAP_*`` bits; 0 releases every
    trap), report entries only for the syscall numbers in *syscalls* (None: all; the
    filter never hides exits) and, with *above*, for every number >=
    ``KVM_NITRO_FILTER_NR``; *ring_slots* is the ring's slot count (a power of two up to
    65536; 0 keeps the current ring).

    :raises ValueError: an unknown trap bit, a slot count or a syscall number out of range.
    """
    if traps & ~TRAP_ALL:
        raise ValueError(f"unknown trap bits {traps & ~TRAP_ALL:#x}")
    if ring_slots < 0 or ring_slots > _MAX_SLOTS or ring_slots & (ring_slots - 1):
        raise ValueError(f"ring_slots must be 0 or a power of two <= {_MAX_SLOTS}")
    cfg = ffi.new("struct kvm_nitro_trap_config *")
    cfg.version = lib.KVM_NITRO_ABI_VERSION
    cfg.size = ffi.sizeof(cfg[0])
    cfg.traps = traps
    cfg.delivery = delivery
    cfg.ring_slots = ring_slots
    if syscalls is not None or above:
        cfg.flags = lib.KVM_NITRO_FILTER_ENABLE | (lib.KVM_NITRO_FILTER_ABOVE if above else 0)
        for nr in syscalls or ():
            if not 0 <= nr < lib.KVM_NITRO_FILTER_NR:
                raise ValueError(
                    f"syscall number {nr} is outside the filter (0..{lib.KVM_NITRO_FILTER_NR - 1})"
                )
            cfg.syscall_filter[nr // 64] |= 1 << (nr % 64)
    return cfg


def eventfd_request(fd: int) -> Any:
    """``struct kvm_nitro_eventfd *``: signal eventfd *fd* when the ring goes non-empty
    (-1: stop signalling)."""
    req = ffi.new("struct kvm_nitro_eventfd *")
    req.fd = fd
    return req


def continue_request(seq: int, vcpu_id: int, skip: bool = False) -> Any:
    """``struct kvm_nitro_continue *``: let the vCPU *vcpu_id* that produced event *seq*
    run on (synchronous delivery); with *skip* the instruction is not completed and the
    guest gets its #UD/#GP."""
    req = ffi.new("struct kvm_nitro_continue *")
    req.seq = seq
    req.vcpu_id = vcpu_id
    req.flags = lib.KVM_NITRO_CONTINUE_F_SKIP if skip else 0
    return req
