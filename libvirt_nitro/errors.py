"""The one exception family of libvirt-nitro.

Every failure a user can cause or meet (bad domain, missing permission, a KVM ioctl that
fails) is a :class:`NitroError` whose ``str()`` is a single line fit for the command line.
"""

from __future__ import annotations

__all__ = [
    "NitroError",
    "ConnectionFailed",
    "DomainNotFound",
    "DomainNotRunning",
    "NotQemuDomain",
    "PermissionDenied",
    "NoKvmFds",
    "MalformedDomainXml",
    "QemuMonitorError",
    "KvmIoctlError",
    "NitroAbiError",
    "NoEventLoop",
    "GdbstubError",
    "AlreadyTraced",
    "NoNitroKvm",
    "GdbstubErrorReply",
    "UnsupportedKernel",
    "MalformedKernelImage",
    "InvalidTraceConfig",
    "HookConflict",
    "InvalidTraceExpression",
    "GuestMemoryError",
    "PageFault",
]


class NitroError(Exception):
    """Base of all libvirt-nitro errors; the message is one line for the user."""


class ConnectionFailed(NitroError):
    """libvirt could not be reached at the given URI."""


class DomainNotFound(NitroError):
    """No domain matches the given name, UUID or id."""


class DomainNotRunning(NitroError):
    """The domain exists but has no running QEMU process to trace."""


class NotQemuDomain(NitroError):
    """The domain is not driven by QEMU (another libvirt driver, or a remote host)."""


class PermissionDenied(NitroError):
    """The caller may not inspect the QEMU process (not root, or ptrace refused)."""


class NoKvmFds(NitroError):
    """KVM file descriptors were asked for but QEMU holds none (TCG, or not yet created)."""


class MalformedDomainXml(NitroError):
    """A domain XML document (from libvirt or from the user) could not be parsed."""


class QemuMonitorError(NitroError):
    """A QEMU monitor command sent through libvirt failed or gave an unexpected reply."""


class KvmIoctlError(NitroError):
    """A KVM ioctl failed; names the ioctl, the fd it was issued on, errno and strerror.

    :ivar ioctl: the ioctl's name, e.g. ``"KVM_RUN"``
    :ivar errno: the errno the kernel returned
    :ivar strerror: ``os.strerror(errno)``
    :ivar target: what the fd is (``"vcpu fd 7"``, ``"/dev/kvm fd 3"``)
    """

    def __init__(self, ioctl: str, errno: int, target: str = "") -> None:
        import errno as _errno
        import os

        self.ioctl = ioctl
        self.errno = errno
        self.strerror = os.strerror(errno)
        self.target = target
        name = _errno.errorcode.get(errno, str(errno))
        where = f" on {target}" if target else ""
        super().__init__(f"{ioctl}{where} failed: {name} ({self.strerror})")


class NitroAbiError(NitroError):
    """Data that should follow kvm_nitro.h does not (unknown version, bad size, bad ring)."""


class NoEventLoop(NitroError):
    """No libvirt event loop implementation is registered, so events cannot be delivered."""


class GdbstubError(NitroError):
    """QEMU's gdbstub failed: a dead or silent socket, an ``E`` reply, a protocol error."""


class AlreadyTraced(NitroError):
    """Another libvirt-nitro tracer (or its guard) holds the domain."""


class NoNitroKvm(NitroError):
    """The kernel backend was asked for, but ``/dev/kvm`` has no Nitro extension
    (KVM_CHECK_EXTENSION(KVM_CAP_NITRO) is 0: the stock kvm modules), or there is no
    ``/dev/kvm``. The message names the fix: load the patched modules built from
    ``kernel/``, or use the gdbstub backend.

    :ivar reason: what was found, without the common prefix and the fix
    """

    def __init__(
        self, reason: str = "/dev/kvm does not have it (KVM_CAP_NITRO is 0: stock kvm modules)"
    ) -> None:
        self.reason = reason
        super().__init__(
            f"the kernel backend needs the Nitro KVM extension: {reason}; load the patched "
            "kvm modules built from kernel/ (kernel/build.sh), or use --backend gdbstub"
        )


class GdbstubErrorReply(GdbstubError):
    """The gdbstub answered a packet with an error reply (``E NN``), e.g. ``E14`` for
    unmapped memory, ``E22`` for an invalid argument; the connection stays usable.

    :ivar packet: the packet refused (its first 40 characters)
    :ivar reply: the reply, e.g. ``"E14"``
    :ivar code: the error number of an ``E NN`` reply (``None`` for ``E.text``)
    """

    def __init__(self, packet: str, reply: str) -> None:
        self.packet = packet[:40]
        self.reply = reply
        try:
            self.code: int | None = int(reply[1:3], 16) if reply[1:2] != "." else None
        except ValueError:
            self.code = None
        super().__init__(f"gdbstub refused packet {self.packet!r}: {reply}")


class UnsupportedKernel(NitroError):
    """The guest kernel image cannot give the layout the tracer needs (no BTF, no such
    symbol or member, a compression this Python cannot decompress).

    :ivar reason: what is wrong, without the common prefix
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"unsupported guest kernel: {reason}")


class MalformedKernelImage(UnsupportedKernel):
    """A kernel image, its compressed payload or its BTF is corrupt or truncated."""


class GuestMemoryError(NitroError):
    """Guest memory could not be read: a guest-physical range outside guest RAM (MMIO, a
    hole, beyond the end), or QEMU's memory not readable at the host address it maps to.

    :ivar address: the first guest-physical address that could not be read
    :ivar size: bytes asked for
    """

    def __init__(self, address: int, size: int, why: str = "is not guest RAM") -> None:
        self.address = address
        self.size = size
        super().__init__(f"guest-physical address {address:#x} ({size} bytes) {why}")


class PageFault(GuestMemoryError):
    """A guest-virtual address is not mapped by the page tables walked (what the CPU would
    report as a #PF), or is not canonical. A :class:`GuestMemoryError`, so one ``except``
    covers any unreadable guest memory.

    :ivar vaddr: the guest-virtual address (also :attr:`address`)
    :ivar level: the paging level whose entry was not present or invalid (5 = PML5, 4 = PML4,
        3 = PDPT, 2 = PD, 1 = PT); for a non-canonical address, the number of levels (4 or 5)
    """

    def __init__(self, vaddr: int, level: int, why: str = "not present") -> None:
        self.vaddr = self.address = vaddr
        self.size = 0
        self.level = level
        NitroError.__init__(
            self, f"guest-virtual address {vaddr:#x} is not mapped: {why} (level {level})"
        )


class InvalidTraceConfig(NitroError):
    """A ``<nitro:trace>`` metadata element breaks the schema (``nitro.rng``) or a rule the
    parser checks; the message names the line and the rule."""


class HookConflict(NitroError):
    """A libvirt hook script that libvirt-nitro did not write is in the way."""


class InvalidTraceExpression(NitroError):
    """A ``-e trace=`` expression names no system call or class (``openat,%file``)."""
