"""The kernel backend: Nitro tracing by the patched KVM itself (``kernel/``).

The kernel traps SYSCALL/SYSRET (and SYSENTER/SYSEXIT where it can), builds each event at
the VM exit, completes the instruction and lets the vCPU run on; events go into a ring that
this process maps. So the backend has no thread and no guard: :meth:`KernelBackend.open`
attaches and maps the ring, which becomes the :class:`~libvirt_nitro.tracer.Tracer`'s own
ring; :meth:`~KernelBackend.start` wires the tracer's eventfd, hands the kernel the filter's
syscall numbers (its in-kernel bitmap) and arms the traps;
:meth:`~KernelBackend.stop` closes the nitro fd, and the kernel gives the guest back (as it
does when this process dies, even by SIGKILL).

Events are built in the kernel, where nothing decodes them: they carry registers, not the
guest task or guest memory; the tracer's pipeline pairs and filters them as it drains the
ring.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
from typing import Any

from ..abi.ring import Ring
from ..backend import Backend
from ..domain.kvmfds import VM_LINK, find_kvm_fds
from ..domain.pidfd import pidfd_open
from ..errors import KvmIoctlError, NitroError, NoKvmFds
from ..runtime import acquire_trace_lock
from .capability import require_nitro
from .nitrofd import NitroFd
from .requests import (
    DELIVERY_ASYNC,
    DELIVERY_SYNC,
    TRAP_ALL,
    TRAP_SYSENTER,
    TRAP_SYSEXIT,
    trap_config,
    trap_names,
)

__all__ = ["KernelBackend", "NOT_DECODED"]

log = logging.getLogger(__name__)

#: Why the kernel backend's records are raw (the command line prints it).
NOT_DECODED = (
    "the kernel backend builds events in the kernel: arguments are not decoded and "
    "processes not named (raw registers; --backend gdbstub decodes)"
)


class KernelBackend(Backend):
    """Traces the KVM VM behind fd number *vm_fd* (-1: its only VM) of process *pid* (its
    VMM: QEMU, or any program running KVM) through the Nitro extension.

    *traps* are the ``TRAP_*`` bits wanted (SYSENTER/SYSEXIT are dropped if the kernel
    cannot trap them: :attr:`armed_traps` says what is armed). For a libvirt domain
    (:meth:`for_domain`), *domain* is its ``(uuid, name)``: its trace lock is taken (one
    tracer per domain, whichever backend) and errors name it. The pipeline's filter hands
    the kernel its syscall numbers: entries of other calls are never queued (exits always
    are; the pipeline drops those whose entry it did not see).

    *delivery* ``"async"`` (the default): the trapped vCPU runs on at once and a consumer
    that falls behind loses events (counted). ``"sync"``: each trapped vCPU waits until the
    tracer's callbacks have seen its event (:meth:`delivered` answers it with
    KVM_NITRO_CONTINUE), so nothing is lost and the guest runs at the consumer's pace.
    """

    name = "kernel"
    in_place_filters = frozenset({"syscalls"})

    def __init__(
        self,
        pid: int,
        vm_fd: int = -1,
        *,
        traps: int = TRAP_ALL,
        domain: tuple[str, str] | None = None,
        delivery: str = "async",
    ) -> None:
        if delivery not in ("async", "sync"):
            raise ValueError(f"delivery must be 'async' or 'sync', not {delivery!r}")
        self.pid = pid
        self.delivery = delivery
        self.vm_fd = vm_fd
        self.traps = traps
        self.syscalls: frozenset[int] | None = None
        self.domain = domain
        #: What errors call the traced VM.
        self.what = f"domain {domain[1]!r}" if domain else f"the VM of process {pid}"
        #: Why tracing ended on its own (the VMM exited), else None.
        self.error: BaseException | None = None
        #: The ``TRAP_*`` bits the kernel armed (0 until :meth:`start`).
        self.armed_traps = 0
        #: The delivery the kernel armed (``"async"``/``"sync"``; None until :meth:`start`).
        self.armed_delivery: str | None = None
        self.ring: Ring | None = None
        self._nitro: NitroFd | None = None
        self._pidfd = -1
        self._lock_fd = -1

    @classmethod
    def for_domain(cls, process: Any, **options: Any) -> KernelBackend:
        """The backend of a libvirt domain resolved to *process*
        (:class:`~libvirt_nitro.domain.QemuProcess`): QEMU's pid and its kvm-vm fd number.

        :raises NoKvmFds: QEMU holds no KVM VM fd (a TCG domain).
        """
        vm_fd = find_kvm_fds(process.pid).get(VM_LINK)
        if vm_fd is None:
            raise NoKvmFds(
                f"domain {process.name!r} has no KVM VM (QEMU runs it under {process.accel}): "
                "the kernel backend needs a KVM domain; use --backend gdbstub"
            )
        domain = (process.uuid, process.name)
        return cls(process.pid, vm_fd, domain=domain, **options)

    # -------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        """True while armed and the VMM lives (its exit sets :attr:`error`)."""
        if self.armed_traps == 0 or self._nitro is None:
            return False
        if select.select([self._pidfd], [], [], 0)[0]:
            self.error = NitroError(f"{self.what}: the VMM process {self.pid} exited")
            self.armed_traps = 0
            return False
        return True

    def notes(self) -> list[str]:
        """That arguments are not decoded (:data:`NOT_DECODED`)."""
        return [NOT_DECODED]

    def open(self, slot_count: int = 4096) -> Ring:
        """Check the extension, take the trace lock, attach, size (*slot_count* slots) and
        map the ring; return the ring, for ``Tracer(ring=...)``. Nothing is armed yet.

        :raises NoNitroKvm: the kernel has no Nitro extension (the VM is not touched).
        :raises AlreadyTraced: another tracer holds the domain or the VM.
        :raises NitroError: attaching failed (see :meth:`NitroFd.attach_pid`).
        """
        if self._nitro is not None and self.ring is not None:
            return self.ring
        require_nitro()
        try:
            if self.domain is not None:
                self._lock_fd = acquire_trace_lock(*self.domain)
            self._pidfd = pidfd_open(self.pid)
            self._nitro = NitroFd.attach_pid(self._pidfd, self.vm_fd, what=self.what)
            self._nitro.set_traps(trap_config(0, ring_slots=slot_count))
            self.ring = self._nitro.map_ring()
        except BaseException:
            self.stop()
            raise
        return self.ring

    def start(self, ring: Ring, pipeline: Any = None) -> None:
        """Wire *ring*'s eventfd (the tracer's), hand the kernel *pipeline*'s syscall
        filter and arm the traps; returns once armed.

        :raises NitroError: *ring* is not this backend's (build the Tracer with
            ``ring=backend.open()``: :func:`~libvirt_nitro.attachment.attach_backend`), or
            the kernel refused.
        """
        if ring is not self.ring or self._nitro is None:
            raise NitroError(
                "the kernel backend fills the kernel's own ring: build the Tracer with "
                "attach_backend(backend)"
            )
        if pipeline is not None:
            self.syscalls = pipeline.filter.only(self.in_place_filters).syscalls
        try:
            if ring.notify_fd is not None:
                self._nitro.set_eventfd(ring.notify_fd)
            self._arm()
        except BaseException:
            self.stop()
            raise

    def _arm(self) -> None:
        assert self._nitro is not None
        traps = self.traps
        while True:
            try:
                delivery = DELIVERY_SYNC if self.delivery == "sync" else DELIVERY_ASYNC
                self._nitro.set_traps(trap_config(traps, delivery=delivery, syscalls=self.syscalls))
                break
            except KvmIoctlError as exc:
                optional = traps & (TRAP_SYSENTER | TRAP_SYSEXIT)
                if exc.errno != errno.EOPNOTSUPP:
                    raise
                if not optional or not traps & ~optional:
                    raise NitroError(
                        f"{self.what}: this kernel's Nitro extension cannot trap "
                        f"{'/'.join(trap_names(traps))} here (EOPNOTSUPP)"
                    ) from None
                traps &= ~optional  # older builds: SYSCALL/SYSRET only
        armed = self._nitro.get_traps()
        self.armed_traps = armed.traps
        self.armed_delivery = "sync" if armed.delivery == DELIVERY_SYNC else "async"
        log.info("%s: armed %s", self.what, ", ".join(trap_names(self.armed_traps)))

    def delivered(self, events: list[Any]) -> None:
        """With synchronous delivery, let the vCPU of each of *events* run on."""
        nitro = self._nitro
        if self.delivery != "sync" or nitro is None:
            return
        for event in events:
            nitro.continue_vcpu(event.seq, event.vcpu_id)

    def stop(self) -> None:
        """Give the guest back (close the nitro fd: the kernel restores each vCPU's EFER
        and SYSENTER_CS) and release everything; idempotent. The ring keeps what it holds."""
        nitro, self._nitro = self._nitro, None
        self.armed_traps = 0
        try:
            if nitro is not None:
                nitro.close()
        finally:
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1
            if self._lock_fd >= 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = -1

    @property
    def armed_names(self) -> list[str]:
        """The instructions armed (``["SYSCALL", "SYSRET"]``), empty when not armed."""
        return trap_names(self.armed_traps)
