"""The kernel backend: the Nitro KVM extension of ``kernel/`` from userspace.

:mod:`.capability` asks ``/dev/kvm`` whether the extension is there, :mod:`.requests` fills
the request structs of ``kvm_nitro.h``, :mod:`.nitrofd` wraps the nitro fd (attach, trap
configuration, eventfd, the ring) and :mod:`.backend` is :class:`KernelBackend`, the
tracer's backend over it.
"""

from __future__ import annotations

from .backend import NOT_DECODED, KernelBackend
from .capability import nitro_abi_version, require_nitro
from .nitrofd import NitroFd
from .requests import (
    DELIVERY_ASYNC,
    DELIVERY_SYNC,
    TRAP_ALL,
    TRAP_SYSCALL,
    TRAP_SYSENTER,
    TRAP_SYSEXIT,
    TRAP_SYSRET,
    attach_request,
    continue_request,
    eventfd_request,
    trap_config,
    trap_names,
)

__all__ = [
    "DELIVERY_ASYNC",
    "DELIVERY_SYNC",
    "NOT_DECODED",
    "TRAP_ALL",
    "TRAP_SYSCALL",
    "TRAP_SYSENTER",
    "TRAP_SYSEXIT",
    "TRAP_SYSRET",
    "KernelBackend",
    "NitroFd",
    "attach_request",
    "continue_request",
    "eventfd_request",
    "nitro_abi_version",
    "require_nitro",
    "trap_config",
    "trap_names",
]
