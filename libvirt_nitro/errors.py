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
