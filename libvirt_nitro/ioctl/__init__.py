"""KVM through cffi: the ``linux/kvm.h`` and ``kvm_nitro.h`` bindings and fd objects.

``ffi``/``lib`` are the API-mode extension compiled at install time from
``_cffi_src`` (one cdef module per header); :mod:`.kvm` has :class:`Kvm`,
:class:`Vm` and :class:`Vcpu` (x86 architectural constants: :mod:`libvirt_nitro.x86`).
Importing this package without the extension built raises ImportError naming the fix.
"""

from __future__ import annotations

from ._binding import IOCTLS, ffi, ioctl, ioctl_raw, lib
from .kvm import KVM_DEVICE, Kvm, KvmFd, Vcpu, Vm

__all__ = [
    "IOCTLS",
    "KVM_DEVICE",
    "Kvm",
    "KvmFd",
    "Vcpu",
    "Vm",
    "ffi",
    "ioctl",
    "ioctl_raw",
    "lib",
]
