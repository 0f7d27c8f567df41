"""The nitro fd: one tracer's hold on one VM (``KVM_NITRO_ATTACH``), and its calls.

:class:`NitroFd` attaches (by pidfd of the VMM, or on a VM fd this process holds), sets
and reads the trap configuration, wires the eventfd, maps the ring as a
:class:`~libvirt_nitro.abi.ring.Ring`.

Closing gives the guest back: the kernel releases every trap and restores each vCPU's
EFER/SYSENTER_CS when the last reference to the fd goes, and a mapping of the ring is such
a reference. :meth:`NitroFd.close` therefore disarms first, then moves the ring's pages to
private anonymous memory at the same address (``mremap``), so that the :class:`Ring` (and
any pointer into it) still reads the events it holds while the kernel's ring is let go.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
from typing import Any

from ..abi.ring import HEADER_SIZE, Ring
from ..errors import (
    AlreadyTraced,
    KvmIoctlError,
    NitroAbiError,
    NitroError,
    NoNitroKvm,
    PermissionDenied,
)
from ..ioctl import Kvm, KvmFd, ffi, lib
from .requests import attach_request, continue_request, eventfd_request, trap_config

__all__ = ["NitroFd"]

log = logging.getLogger(__name__)

#: Largest ring mapping accepted (65536 slots of 4 KiB: far above any real slot size).
_MAX_RING_BYTES = 1 << 28


class NitroFd(KvmFd):
    """A nitro fd (``anon_inode:kvm-nitro``), owned. *what* names the traced VM in errors
    (``"domain 'web01'"``, ``"the VM of process 4242"``)."""

    kind = "nitro fd"

    def __init__(self, fd: int, *, what: str = "the VM") -> None:
        super().__init__(fd)
        self.what = what
        self._map: mmap.mmap | None = None
        self._ring: Ring | None = None

    def __enter__(self) -> NitroFd:
        return self

    # ----------------------------------------------------------------- attach
    @classmethod
    def attach_pid(cls, pidfd: int, vm_fd: int = -1, *, what: str = "the VM") -> NitroFd:
        """KVM_NITRO_ATTACH on ``/dev/kvm``: the VM behind fd number *vm_fd* of the process
        named by *pidfd* (-1: its only VM). Needs CAP_SYS_PTRACE, or being that process.

        :raises AlreadyTraced: another tracer holds the VM (EBUSY).
        :raises PermissionDenied: no ptrace capability over the VMM.
        :raises NoNitroKvm: the kernel has no Nitro extension.
        :raises NitroError: the process, its VM or its fd is not there.
        """
        with Kvm.open() as kvm:
            return cls(_attach(kvm, attach_request(pidfd, vm_fd), what), what=what)

    @classmethod
    def attach_vm(cls, vm_fd: int, *, what: str = "the VM") -> NitroFd:
        """KVM_NITRO_ATTACH on a VM fd of this process (e.g. one taken from the VMM with
        ``pidfd_getfd``, which checked ptrace access). The fd stays the caller's.

        :raises AlreadyTraced: another tracer holds the VM (EBUSY).
        """
        return cls(_attach(KvmFd(vm_fd, owned=False), attach_request(), what), what=what)

    # ----------------------------------------------------------------- calls
    def set_traps(self, config: Any) -> None:
        """KVM_NITRO_SET_TRAPS with a ``struct kvm_nitro_trap_config *``
        (:func:`~.requests.trap_config`).

        :raises KvmIoctlError: refused (EOPNOTSUPP: not implemented by this kernel; EBUSY:
            another ring size after the ring was mapped).
        """
        self.ioctl("KVM_NITRO_SET_TRAPS", config)

    def get_traps(self) -> Any:
        """KVM_NITRO_GET_TRAPS: the configuration in force (a new
        ``struct kvm_nitro_trap_config *``; ``ring_slots`` is the ring's real size)."""
        cfg = ffi.new("struct kvm_nitro_trap_config *")
        self.ioctl("KVM_NITRO_GET_TRAPS", cfg)
        return cfg

    def set_eventfd(self, fd: int) -> None:
        """KVM_NITRO_SET_EVENTFD: the kernel signals eventfd *fd* when the ring goes from
        empty to non-empty; -1 stops it."""
        self.ioctl("KVM_NITRO_SET_EVENTFD", eventfd_request(fd))

    def continue_vcpu(self, seq: int, vcpu_id: int, skip: bool = False) -> None:
        """KVM_NITRO_CONTINUE: let vCPU *vcpu_id*, waiting on its event *seq* (synchronous
        delivery), run on; with *skip* the instruction is not completed and the guest gets
        its #UD/#GP. An event that waits no more (ENOENT: its vCPU was let go, the traps
        changed) is not an error."""
        try:
            self.ioctl("KVM_NITRO_CONTINUE", continue_request(seq, vcpu_id, skip))
        except KvmIoctlError as exc:
            if exc.errno != errno.ENOENT:
                raise

    def map_ring(self) -> Ring:
        """mmap the ring (once) and return it as a :class:`Ring`. Its size is fixed from
        then on: set ``ring_slots`` before.

        :raises NitroAbiError: the kernel's ring header is not one this code can read.
        """
        if self._ring is not None:
            return self._ring
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        offset = lib.KVM_NITRO_RING_PGOFF * mmap.PAGESIZE
        with mmap.mmap(self.fd, mmap.PAGESIZE, mmap.MAP_SHARED, prot, offset=offset) as head:
            hdr = ffi.new("struct kvm_nitro_ring_header *")
            ffi.memmove(hdr, head[:HEADER_SIZE], HEADER_SIZE)
        length = hdr.data_offset + hdr.slot_count * hdr.slot_size
        if not HEADER_SIZE <= length <= _MAX_RING_BYTES:
            raise NitroAbiError(
                f"ring of {hdr.slot_count} slots of {hdr.slot_size} bytes at {hdr.data_offset}"
            )
        # The kernel's ring is mapped over an anonymous mmap object of ours: an mmap of the
        # fd itself would keep a dup of it, and with it the traps, until garbage collection.
        buf = mmap.mmap(-1, _page_round(length))
        try:
            _map_over(buf, self.fd, offset)
            # A forked child must not keep the ring (and with it the traps) alive.
            buf.madvise(mmap.MADV_DONTFORK)
            ring = Ring.from_buffer(buf)
        except BaseException:
            buf.close()
            raise
        self._map, self._ring = buf, ring
        return ring

    # ----------------------------------------------------------------- close
    def close(self) -> None:
        """Give the guest back and close the fd; idempotent.

        With the ring mapped: release every trap and the eventfd, then move the ring to
        private memory (the :class:`Ring` keeps its unread events and counters), so that
        closing the fd releases the VM at once. An event the kernel was producing while
        the traps were released may land in the kernel's ring after the copy.
        """
        if self._fd >= 0 and self._map is not None:
            self.ioctl_raw("KVM_NITRO_SET_TRAPS", trap_config(0))
            self.ioctl_raw("KVM_NITRO_SET_EVENTFD", eventfd_request(-1))
            try:
                _privatize(self._map)
            except OSError as exc:  # the fd's release then waits for the mapping to go
                log.warning("%s: could not detach the ring from the kernel: %s", self.what, exc)
            self._map = None
        super().close()


def _attach(target: KvmFd, req: Any, what: str) -> int:
    """KVM_NITRO_ATTACH on *target*; the new fd, or the error it means for the user."""
    ret = target.ioctl_raw("KVM_NITRO_ATTACH", req)
    if ret >= 0:
        return ret
    err = -ret
    if err == errno.EBUSY:
        raise AlreadyTraced(f"{what} is already traced: another tracer holds its Nitro fd")
    if err in (errno.EPERM, errno.EACCES):
        raise PermissionDenied(f"attaching to {what} refused: need CAP_SYS_PTRACE (root)")
    if err == errno.ENOTTY:
        raise NoNitroKvm()
    if err == errno.EPROTO:
        raise NitroAbiError(f"the kernel refused Nitro ABI version {req.version} (EPROTO)")
    if err == errno.ESRCH:
        raise NitroError(f"{what}: the VMM process is gone")
    if err == errno.ENOENT:
        raise NitroError(f"{what}: the VMM process has no KVM VM")
    if err == errno.ENOTUNIQ:
        raise NitroError(f"{what}: the VMM process has several KVM VMs: name its kvm-vm fd")
    if req.vm_fd >= 0 and err in (errno.EBADF, errno.EINVAL):
        raise NitroError(f"{what}: fd {req.vm_fd} of the VMM process is not a KVM VM")
    raise KvmIoctlError("KVM_NITRO_ATTACH", err, f"{target.kind} {target.fd}")


def _page_round(length: int) -> int:
    return -(-length // mmap.PAGESIZE) * mmap.PAGESIZE


def _address(buf: mmap.mmap) -> int:
    with ffi.from_buffer(buf) as ptr:
        return int(ffi.cast("uintptr_t", ptr))


def _map_over(buf: mmap.mmap, fd: int, offset: int) -> None:
    """Map *fd* at *offset*, shared, over the whole of *buf* (``MAP_FIXED``)."""
    err = -lib.nitro_map_shared_fixed(_address(buf), len(buf), fd, offset)
    if err:
        raise OSError(err, f"mmap of the Nitro ring failed: {os.strerror(err)}")


def _privatize(buf: mmap.mmap) -> None:
    """Replace the shared mapping *buf* by private anonymous memory holding the same bytes,
    at the same address, in one step (``mremap(MREMAP_FIXED)`` of a filled copy): a reader
    never sees the range unmapped or half copied, and the kernel's mapping is gone."""
    err = -lib.nitro_replace_by_private_copy(_address(buf), _page_round(len(buf)), len(buf))
    if err:
        raise OSError(err, f"moving the ring to private memory failed: {os.strerror(err)}")
