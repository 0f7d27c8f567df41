"""The libvirt side: from a libvirt domain to its QEMU process, vCPU threads and KVM fds.

Data flows one way: a ``virDomain`` is resolved (:func:`resolve`) into a :class:`QemuProcess`
that later layers (the trap backends) work from.
"""

from __future__ import annotations

from .connection import (
    describe_error,
    is_local_qemu,
    libvirt_module,
    lookup_domain,
    open_connection,
    require_local_qemu,
)
from .kvmfds import KvmFds, duplicate_kvm_fds, find_kvm_fds
from .monitor import hmp, qmp
from .pidfd import pidfd_getfd, pidfd_open
from .qemu import QemuProcess, VcpuThread, resolve
from .xmldesc import DomainXml

__all__ = [
    "DomainXml",
    "KvmFds",
    "QemuProcess",
    "VcpuThread",
    "describe_error",
    "duplicate_kvm_fds",
    "find_kvm_fds",
    "hmp",
    "is_local_qemu",
    "libvirt_module",
    "lookup_domain",
    "open_connection",
    "pidfd_getfd",
    "pidfd_open",
    "qmp",
    "require_local_qemu",
    "resolve",
]
