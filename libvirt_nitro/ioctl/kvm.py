"""Pythonic KVM objects over file descriptors: :class:`Kvm`, :class:`Vm`, :class:`Vcpu`.

Each object wraps one fd: ``/dev/kvm``, an ``anon_inode:kvm-vm`` or an
``anon_inode:kvm-vcpu:N``.  An object either owns its fd (closes it on
:meth:`close`, ``with`` exit, or garbage collection) or borrows one (``owned=False``,
e.g. an fd another part of the program got with ``pidfd_getfd`` and closes itself).
Every ioctl exists in a raw form (``ioctl_raw``, returns ``-errno``) and a checked
form (the typed methods and ``ioctl``, raising :class:`KvmIoctlError`).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import KvmIoctlError
from ._binding import ffi, ioctl, ioctl_raw, lib

__all__ = ["KvmFd", "Kvm", "Vm", "Vcpu", "KVM_DEVICE"]

KVM_DEVICE = "/dev/kvm"


class KvmFd:
    """One KVM file descriptor, owned or borrowed; a context manager."""

    kind = "kvm fd"

    def __init__(self, fd: int, *, owned: bool = True) -> None:
        self._fd = fd
        self.owned = owned

    @property
    def fd(self) -> int:
        """The file descriptor number.

        :raises ValueError: the object was closed.
        """
        if self._fd < 0:
            raise ValueError(f"{self.kind} is closed")
        return self._fd

    def fileno(self) -> int:
        """The fd, so the object can be given to ``select``/``os`` functions."""
        return self.fd

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._fd < 0

    def close(self) -> None:
        """Close the fd if owned (a borrowed fd is only forgotten); idempotent."""
        fd, self._fd = self._fd, -1
        if fd >= 0 and self.owned:
            os.close(fd)

    def __enter__(self) -> KvmFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<{type(self).__name__} {state}{'' if self.owned else ' borrowed'}>"

    def _target(self) -> str:
        return f"{self.kind} {self._fd}"

    def ioctl_raw(self, name: str, arg: Any = None) -> int:
        """Issue ioctl *name* (``"KVM_RUN"``...) with *arg*; return the result or ``-errno``."""
        return ioctl_raw(name, self.fd, arg)

    def ioctl(self, name: str, arg: Any = None) -> int:
        """Issue ioctl *name* with *arg* and return its result.

        :raises KvmIoctlError: the ioctl failed (names it, this fd, errno).
        """
        return ioctl(name, self.fd, arg, self._target())

    def check_extension(self, cap: int) -> int:
        """KVM_CHECK_EXTENSION(*cap*): 0 if absent, else the capability's value."""
        return self.ioctl("KVM_CHECK_EXTENSION", cap)


class Kvm(KvmFd):
    """``/dev/kvm`` (the KVM system fd)."""

    kind = "/dev/kvm fd"

    @classmethod
    def open(cls, path: str = KVM_DEVICE) -> Kvm:
        """Open *path* read-write (close-on-exec).

        :raises OSError: the device is absent or not accessible.
        """
        return cls(os.open(path, os.O_RDWR | os.O_CLOEXEC))

    def __enter__(self) -> Kvm:
        return self

    def api_version(self) -> int:
        """KVM_GET_API_VERSION (12 on every kernel since 2.6.22)."""
        return self.ioctl("KVM_GET_API_VERSION")

    def vcpu_mmap_size(self) -> int:
        """KVM_GET_VCPU_MMAP_SIZE: bytes to mmap from a vCPU fd (struct kvm_run + pages)."""
        return self.ioctl("KVM_GET_VCPU_MMAP_SIZE")

    def create_vm(self, machine_type: int = 0) -> Vm:
        """KVM_CREATE_VM: a new, owned :class:`Vm`."""
        return Vm(self.ioctl("KVM_CREATE_VM", machine_type), vcpu_mmap_size=self.vcpu_mmap_size())


class Vm(KvmFd):
    """A KVM VM fd (``anon_inode:kvm-vm``)."""

    kind = "vm fd"

    def __init__(self, fd: int, *, owned: bool = True, vcpu_mmap_size: int | None = None) -> None:
        super().__init__(fd, owned=owned)
        self._vcpu_mmap_size = vcpu_mmap_size

    def __enter__(self) -> Vm:
        return self

    def create_vcpu(self, vcpu_id: int = 0) -> Vcpu:
        """KVM_CREATE_VCPU(*vcpu_id*): a new, owned :class:`Vcpu` with kvm_run mapped."""
        return Vcpu(
            self.ioctl("KVM_CREATE_VCPU", vcpu_id),
            vcpu_id=vcpu_id,
            mmap_size=self._vcpu_mmap_size,
        )

    def set_user_memory_region(
        self, slot: int, guest_phys_addr: int, memory_size: int, userspace_addr: int, flags: int = 0
    ) -> None:
        """KVM_SET_USER_MEMORY_REGION: map *memory_size* bytes at host virtual address
        *userspace_addr* to guest-physical *guest_phys_addr* in memory slot *slot*."""
        region = ffi.new(
            "struct kvm_userspace_memory_region *",
            {
                "slot": slot,
                "flags": flags,
                "guest_phys_addr": guest_phys_addr,
                "memory_size": memory_size,
                "userspace_addr": userspace_addr,
            },
        )
        self.ioctl("KVM_SET_USER_MEMORY_REGION", region)

    def enable_cap(self, cap: int, *args: int, flags: int = 0) -> None:
        """KVM_ENABLE_CAP(*cap*, args[0..3] = *args*) on this VM."""
        req = ffi.new("struct kvm_enable_cap *")
        req.cap = cap
        req.flags = flags
        for i, value in enumerate(args):
            req.args[i] = value
        self.ioctl("KVM_ENABLE_CAP", req)

    def set_msr_filter(
        self,
        ranges: Iterable[tuple[int, int, int, bytes]],
        default_allow: bool = True,
    ) -> None:
        """KVM_X86_SET_MSR_FILTER.  Each range is ``(flags, base, nmsrs, bitmap)`` with
        flags KVM_MSR_FILTER_READ/WRITE and bitmap bit *i* = 1 allowing MSR base + *i*,
        0 denying it (an access to a denied MSR exits to userspace if
        KVM_CAP_X86_USER_SPACE_MSR is enabled with KVM_MSR_EXIT_REASON_FILTER)."""
        filt = ffi.new("struct kvm_msr_filter *")
        filt.flags = lib.KVM_MSR_FILTER_DEFAULT_ALLOW if default_allow else 0
        keep = []
        for i, (flags, base, nmsrs, bitmap) in enumerate(ranges):
            buf = ffi.new("__u8[]", bitmap)
            keep.append(buf)
            filt.ranges[i].flags = flags
            filt.ranges[i].base = base
            filt.ranges[i].nmsrs = nmsrs
            filt.ranges[i].bitmap = buf
        self.ioctl("KVM_X86_SET_MSR_FILTER", filt)


class Vcpu(KvmFd):
    """A KVM vCPU fd (``anon_inode:kvm-vcpu:N``) and its mmap'd ``struct kvm_run``.

    ``mmap_size`` is KVM_GET_VCPU_MMAP_SIZE; if None it is asked from ``/dev/kvm`` when
    :attr:`run_struct` is first used.
    """

    kind = "vcpu fd"

    def __init__(
        self,
        fd: int,
        *,
        owned: bool = True,
        vcpu_id: int | None = None,
        mmap_size: int | None = None,
    ) -> None:
        super().__init__(fd, owned=owned)
        self.vcpu_id = vcpu_id
        self._mmap_size = mmap_size
        self._map: mmap.mmap | None = None
        self._run: Any = None

    def __enter__(self) -> Vcpu:
        return self

    def close(self) -> None:
        """Unmap kvm_run and close the fd if owned."""
        self._run = None
        if self._map is not None:
            self._map.close()
            self._map = None
        super().close()

    @property
    def run_struct(self) -> Any:
        """``struct kvm_run *`` over the vCPU's shared page (mapped on first use)."""
        if self._run is None:
            size = self._mmap_size
            if size is None:
                with Kvm.open() as kvm:
                    size = kvm.vcpu_mmap_size()
            self._map = mmap.mmap(self.fd, size, mmap.MAP_SHARED)
            self._run = ffi.cast("struct kvm_run *", ffi.from_buffer(self._map))
        return self._run

    def run(self) -> int:
        """KVM_RUN; return ``run_struct.exit_reason`` (a KVM_EXIT_* value).

        :raises KvmIoctlError: KVM_RUN failed (EINTR included).
        """
        run = self.run_struct
        self.ioctl("KVM_RUN")
        return run.exit_reason

    def get_regs(self) -> Any:
        """KVM_GET_REGS: a new ``struct kvm_regs *``."""
        regs = ffi.new("struct kvm_regs *")
        self.ioctl("KVM_GET_REGS", regs)
        return regs

    def set_regs(self, regs: Any) -> None:
        """KVM_SET_REGS from a ``struct kvm_regs *``."""
        self.ioctl("KVM_SET_REGS", regs)

    def get_sregs(self) -> Any:
        """KVM_GET_SREGS: a new ``struct kvm_sregs *``."""
        sregs = ffi.new("struct kvm_sregs *")
        self.ioctl("KVM_GET_SREGS", sregs)
        return sregs

    def set_sregs(self, sregs: Any) -> None:
        """KVM_SET_SREGS from a ``struct kvm_sregs *``."""
        self.ioctl("KVM_SET_SREGS", sregs)

    def get_msrs(self, indices: Iterable[int]) -> dict[int, int]:
        """KVM_GET_MSRS: ``{index: value}`` for each MSR index in *indices*.

        :raises KvmIoctlError: KVM refused the call, or read fewer MSRs than asked
            (errno EINVAL then; KVM stops at the first MSR it cannot read).
        """
        wanted = list(indices)
        msrs = ffi.new("struct kvm_msrs *", {"nmsrs": len(wanted), "entries": len(wanted)})
        for i, index in enumerate(wanted):
            msrs.entries[i].index = index
        got = self.ioctl("KVM_GET_MSRS", msrs)
        if got != len(wanted):
            raise KvmIoctlError(
                f"KVM_GET_MSRS(0x{wanted[got]:x})", 22, f"{self._target()}: MSR not readable"
            )
        return {msrs.entries[i].index: msrs.entries[i].data for i in range(got)}

    def set_msrs(self, values: Mapping[int, int]) -> None:
        """KVM_SET_MSRS for each ``{index: value}``.

        :raises KvmIoctlError: KVM refused the call or wrote fewer MSRs than given.
        """
        items = list(values.items())
        msrs = ffi.new("struct kvm_msrs *", {"nmsrs": len(items), "entries": len(items)})
        for i, (index, value) in enumerate(items):
            msrs.entries[i].index = index
            msrs.entries[i].data = value
        done = self.ioctl("KVM_SET_MSRS", msrs)
        if done != len(items):
            raise KvmIoctlError(
                f"KVM_SET_MSRS(0x{items[done][0]:x})", 22, f"{self._target()}: MSR not writable"
            )

    def set_guest_debug(self, control: int, debugreg: Iterable[int] = ()) -> None:
        """KVM_SET_GUEST_DEBUG with *control* (KVM_GUESTDBG_* bits) and
        ``arch.debugreg[0..7]`` = *debugreg* (DR0-DR3, -, -, DR6, DR7)."""
        dbg = ffi.new("struct kvm_guest_debug *")
        dbg.control = control
        for i, value in enumerate(debugreg):
            dbg.arch.debugreg[i] = value
        self.ioctl("KVM_SET_GUEST_DEBUG", dbg)
