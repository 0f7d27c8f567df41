"""Is the Nitro extension there? ``KVM_CHECK_EXTENSION(KVM_CAP_NITRO)`` on ``/dev/kvm``.

The patched kvm modules of ``kernel/`` answer with their ABI version
(``KVM_NITRO_ABI_VERSION``); a stock kernel answers 0, as for any capability it does not
know.
"""

from __future__ import annotations

import errno
import os

from ..errors import NoNitroKvm, PermissionDenied
from ..ioctl import KVM_DEVICE, Kvm, lib

__all__ = ["nitro_abi_version", "require_nitro"]


def nitro_abi_version(path: str = KVM_DEVICE) -> int:
    """The Nitro ABI version of the KVM behind *path*: 0 on a stock kernel, and 0 without
    KVM (no *path*, or its module not loaded).

    :raises PermissionDenied: *path* exists but may not be opened read-write.
    """
    try:
        kvm = Kvm.open(path)
    except PermissionError:
        raise PermissionDenied(f"cannot open {path} read-write: need root (or group kvm)") from None
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
            return 0
        raise
    with kvm:
        return kvm.check_extension(lib.KVM_CAP_NITRO)


def require_nitro(path: str = KVM_DEVICE) -> int:
    """:func:`nitro_abi_version`, which must not be 0.

    :raises NoNitroKvm: no Nitro extension (stock kvm modules), or no KVM at all.
    :raises PermissionDenied: *path* may not be opened.
    """
    version = nitro_abi_version(path)
    if version == 0:
        if os.path.exists(path):
            raise NoNitroKvm()
        raise NoNitroKvm(f"there is no {path} (KVM is not loaded)")
    return version
