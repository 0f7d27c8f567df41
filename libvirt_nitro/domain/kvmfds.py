"""QEMU's KVM file descriptors, found by their link names and duplicated into this process.

A KVM QEMU holds ``anon_inode:kvm-vm`` (the VM) and one ``anon_inode:kvm-vcpu:N`` per vCPU.
Note (DESIGN.md §3): on a stock kernel every ioctl on a duplicated vm/vCPU fd fails with EIO,
because KVM checks ``kvm->mm == current->mm``; the fds are for the Nitro kernel extension,
which accepts them from a ptrace-capable tracer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import NitroError, NoKvmFds, PermissionDenied
from .pidfd import pidfd_getfd, pidfd_open

__all__ = ["KvmFds", "find_kvm_fds", "duplicate_kvm_fds", "VM_LINK", "VCPU_LINK"]

VM_LINK = "anon_inode:kvm-vm"
VCPU_LINK = re.compile(r"anon_inode:kvm-vcpu:(\d+)")


@dataclass
class KvmFds:
    """KVM fds of one QEMU process, duplicated into ours (and owned by this object).

    ``vm`` is our fd of QEMU's ``kvm-vm``; ``vcpus`` maps vCPU index to our fd of QEMU's
    ``kvm-vcpu:N``; ``remote`` maps each link name to QEMU's own fd number.
    """

    pid: int
    vm: int
    vcpus: dict[int, int]
    remote: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        """Close every duplicated fd (QEMU's own are untouched). Safe to call twice."""
        for fd in [self.vm, *self.vcpus.values()]:
            if fd >= 0:
                os.close(fd)
        self.vm = -1
        self.vcpus = {}

    def __enter__(self) -> KvmFds:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def find_kvm_fds(pid: int) -> dict[str, int]:
    """Map the KVM link names in ``/proc/PID/fd`` to QEMU's fd numbers.

    :raises PermissionDenied: we may not read QEMU's fd table (not root).
    :raises NitroError: the process is gone.
    """
    fd_dir = f"/proc/{pid}/fd"
    found: dict[str, int] = {}
    try:
        entries = os.listdir(fd_dir)
    except PermissionError:
        raise PermissionDenied(f"cannot read {fd_dir}: need root (ptrace access to QEMU)") from None
    except FileNotFoundError:
        raise NitroError(f"process {pid} does not exist (did the domain stop?)") from None
    for entry in entries:
        try:
            link = os.readlink(f"{fd_dir}/{entry}")
        except OSError:
            continue  # closed while we looked
        if link == VM_LINK or VCPU_LINK.fullmatch(link):
            found[link] = int(entry)
    return found


def duplicate_kvm_fds(pid: int, expected_vcpus: int | None = None) -> KvmFds:
    """Duplicate QEMU's vm and vCPU fds into this process with ``pidfd_getfd``.

    Each duplicate is checked against the link name it was found under, so an fd that QEMU
    closed and reused in between is detected. *expected_vcpus*, when given, must match.

    :raises NoKvmFds: QEMU holds no ``kvm-vm`` fd (TCG) or not the vCPUs expected.
    :raises PermissionDenied: not root / ptrace refused.
    """
    remote = find_kvm_fds(pid)
    if VM_LINK not in remote:
        raise NoKvmFds(f"QEMU process {pid} holds no KVM vm fd (not accelerated by KVM)")
    vcpu_links = {
        int(VCPU_LINK.fullmatch(name).group(1)): name for name in remote if name != VM_LINK
    }
    if expected_vcpus is not None and sorted(vcpu_links) != list(range(expected_vcpus)):
        raise NoKvmFds(
            f"QEMU process {pid} holds KVM vCPU fds {sorted(vcpu_links)}, "
            f"expected 0..{expected_vcpus - 1}"
        )
    pidfd = pidfd_open(pid)
    fds = KvmFds(pid=pid, vm=-1, vcpus={}, remote=remote)
    try:
        fds.vm = _getfd_checked(pidfd, pid, remote[VM_LINK], VM_LINK)
        for index, name in sorted(vcpu_links.items()):
            fds.vcpus[index] = _getfd_checked(pidfd, pid, remote[name], name)
    except BaseException:
        fds.close()
        raise
    finally:
        os.close(pidfd)
    return fds


def _getfd_checked(pidfd: int, pid: int, remote_fd: int, link: str) -> int:
    fd = pidfd_getfd(pidfd, remote_fd, pid)
    actual = os.readlink(f"/proc/self/fd/{fd}")
    if actual != link:
        os.close(fd)
        raise NitroError(
            f"QEMU {pid} fd {remote_fd} changed from {link} to {actual} while we took it"
        )
    return fd
