"""Load the compiled cffi extension and call its ioctl wrappers.

``ffi`` and ``lib`` come from ``libvirt_nitro.ioctl._kvm_cffi``, built from
``_cffi_src`` at install time.  Each ioctl ``NAME`` of ``linux/kvm.h`` or
``kvm_nitro.h`` that the project binds has a non-variadic C wrapper
``lib.nitro_NAME``; :func:`ioctl_raw` calls it and returns the raw result
(``-errno`` on failure), :func:`ioctl` raises :class:`KvmIoctlError` instead (the
KVM selftests' ``__vcpu_ioctl`` / ``vcpu_ioctl`` pair).
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..errors import KvmIoctlError

try:
    from ._kvm_cffi import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on how the package was installed
    raise ImportError(
        "libvirt_nitro.ioctl._kvm_cffi is not built (the cffi extension compiled at install "
        "time). Install the package with `pip install .` or `pip install -e .` from the "
        f"source tree, with gcc and the Python headers present. ({exc})"
    ) from exc

__all__ = ["ffi", "lib", "IOCTLS", "ioctl", "ioctl_raw"]

_built = ffi.string(lib.nitro_cffi_package_version()).decode()
if _built != __version__:  # pragma: no cover - a stale in-place build
    raise ImportError(
        f"libvirt_nitro.ioctl._kvm_cffi was built for libvirt-nitro {_built}, but this is "
        f"{__version__}: rebuild it with `pip install -e .` (or `pip install .`)."
    )

#: Every bound ioctl: name -> (C wrapper, number of arguments after the fd).
IOCTLS: dict[str, tuple[Any, int]] = {
    name[len("nitro_") :]: (getattr(lib, name), len(ffi.typeof(getattr(lib, name)).args) - 1)
    for name in dir(lib)
    if name.startswith("nitro_KVM_")
}


def ioctl_raw(name: str, fd: int, arg: Any = None) -> int:
    """Issue ioctl *name* on *fd*; return its result, or ``-errno`` if it failed.

    *arg* is the cdata pointer (``struct ... *``) or integer the ioctl takes, or None.
    """
    func, nargs = IOCTLS[name]
    ret = func(fd) if nargs == 0 else func(fd, 0 if arg is None else arg)
    if ret < 0:
        return -ffi.errno
    return ret


def ioctl(name: str, fd: int, arg: Any = None, target: str = "") -> int:
    """Issue ioctl *name* on *fd* and return its non-negative result.

    :raises KvmIoctlError: naming *name*, *target* (what *fd* is), errno and strerror.
    """
    ret = ioctl_raw(name, fd, arg)
    if ret < 0:
        raise KvmIoctlError(name, -ret, target or f"fd {fd}")
    return ret
