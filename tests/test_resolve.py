"""Domain resolution on real libvirt QEMU domains: a booted TCG guest and a KVM domain."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from libvirt_nitro.domain import duplicate_kvm_fds, resolve
from libvirt_nitro.errors import DomainNotRunning, NoKvmFds


def pidfile_pid(name: str) -> int:
    with open(f"/run/libvirt/qemu/{name}.pid") as pidfile:
        return int(pidfile.read())


def thread_name(pid: int, tid: int) -> str:
    with open(f"/proc/{pid}/task/{tid}/comm") as comm:
        return comm.read().strip()


def test_tcg_guest_resolves_to_its_qemu_process(tcg_guest) -> None:
    with resolve(tcg_guest.dom) as process:
        assert process.name == tcg_guest.name
        assert process.pid == pidfile_pid(tcg_guest.name)
        assert process.accel == "tcg"
        assert process.kvm_fds is None
        assert [v.index for v in process.vcpus] == [0, 1]
        # libvirt runs QEMU with debug-threads=on: each vCPU thread is named after its vCPU.
        for vcpu in process.vcpus:
            assert thread_name(process.pid, vcpu.thread_id) == f"CPU {vcpu.index}/TCG"


def test_kvm_fds_are_refused_for_a_tcg_guest(tcg_guest) -> None:
    with pytest.raises(NoKvmFds, match="runs under TCG"):
        resolve(tcg_guest.dom, kvm_fds=True)


def test_kvm_domain_fds_are_duplicated_and_checked(kvm_guest) -> None:
    with resolve(kvm_guest.dom) as process:
        assert process.accel == "kvm"
        assert process.pid == pidfile_pid(kvm_guest.name)
        for vcpu in process.vcpus:
            assert thread_name(process.pid, vcpu.thread_id) == f"CPU {vcpu.index}/KVM"
        fds = process.kvm_fds
        assert fds is not None
        assert os.readlink(f"/proc/self/fd/{fds.vm}") == "anon_inode:kvm-vm"
        assert sorted(fds.vcpus) == [0, 1]
        for index, fd in fds.vcpus.items():
            link = f"anon_inode:kvm-vcpu:{index}"
            assert os.readlink(f"/proc/self/fd/{fd}") == link
            # ...and it is the very fd QEMU holds under that name.
            assert os.readlink(f"/proc/{process.pid}/fd/{fds.remote[link]}") == link
        taken = [fds.vm, *fds.vcpus.values()]
    for fd in taken:  # closing the process closed our duplicates
        with pytest.raises(OSError):
            os.fstat(fd)


def test_expected_vcpu_count_is_checked(kvm_guest) -> None:
    pid = pidfile_pid(kvm_guest.name)
    with pytest.raises(NoKvmFds, match=r"expected 0\.\.2"):
        duplicate_kvm_fds(pid, expected_vcpus=3)


def test_inactive_domain_is_not_running(inactive_domain) -> None:
    with pytest.raises(DomainNotRunning, match="is not running"):
        resolve(inactive_domain)


def test_without_ptrace_rights_the_fds_are_refused(kvm_guest) -> None:
    """As an unprivileged user (nobody), taking QEMU's fds fails with PermissionDenied."""
    pid = pidfile_pid(kvm_guest.name)
    script = (
        "from libvirt_nitro.domain import duplicate_kvm_fds\n"
        "from libvirt_nitro.errors import PermissionDenied\n"
        "try:\n"
        f"    duplicate_kvm_fds({pid})\n"
        "except PermissionDenied as exc:\n"
        "    print('denied:', exc)\n"
    )
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("denied: ") and "need root" in done.stdout
