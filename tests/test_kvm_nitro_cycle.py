"""The ioctl layer on the real /dev/kvm: KVM objects, errors, and the userspace
Nitro cycle on a self-made long-mode VM (SYSCALL at CPL0 with EFER.SCE cleared)."""

from __future__ import annotations

import errno
import os

import pytest

from libvirt_nitro import x86
from libvirt_nitro.abi.event import EVENT_SYSCALL, Event
from libvirt_nitro.abi.ring import Ring
from libvirt_nitro.errors import KvmIoctlError, NitroError
from libvirt_nitro.ioctl import Kvm, Vcpu, Vm, ioctl_raw, lib
from libvirt_nitro.testing.kvmvm import (
    COUNTER,
    EFER_SEEN,
    FAULT_MARKER,
    FMASK,
    STAR,
    UD_MARKER,
    NitroCycle,
    TestVm,
)
from tests.support import require


@pytest.fixture
def kvm_ok() -> None:
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "/dev/kvm present and read-write")


@pytest.fixture
def tvm(kvm_ok: None):
    with TestVm() as vm:
        yield vm


def test_system_ioctls(kvm_ok: None) -> None:
    with Kvm.open() as kvm:
        assert kvm.api_version() == lib.KVM_API_VERSION == 12
        assert kvm.vcpu_mmap_size() >= 4096
        assert kvm.check_extension(lib.KVM_CAP_USER_MEMORY) > 0
        assert kvm.check_extension(lib.KVM_CAP_X86_USER_SPACE_MSR) > 0
        # a stock kernel does not know the Nitro extension
        assert kvm.check_extension(lib.KVM_CAP_NITRO) == 0
    assert kvm.closed


def test_errors_name_the_ioctl_and_errno(kvm_ok: None) -> None:
    with Kvm.open() as kvm:
        from libvirt_nitro.ioctl import ffi

        req = ffi.new("struct kvm_nitro_attach *", {"version": 1, "size": 64, "pidfd": -1})
        raw = kvm.ioctl_raw("KVM_NITRO_ATTACH", req)
        assert raw in (-errno.EINVAL, -errno.ENOTTY)
        with pytest.raises(KvmIoctlError) as info:
            kvm.ioctl("KVM_NITRO_ATTACH", req)
        err = info.value
        assert isinstance(err, NitroError)
        assert err.ioctl == "KVM_NITRO_ATTACH" and err.errno == -raw
        assert err.strerror == os.strerror(-raw)
        assert "KVM_NITRO_ATTACH" in str(err) and errno.errorcode[-raw] in str(err)
        assert "/dev/kvm fd" in str(err)
        # a vCPU ioctl on the system fd
        assert ioctl_raw("KVM_RUN", kvm.fd) < 0
        with pytest.raises(KvmIoctlError, match="KVM_CREATE_VCPU on vm fd"):
            with kvm.create_vm() as vm:
                vm.create_vcpu(0)
                vm.create_vcpu(0)  # the same id twice: EEXIST


def test_borrowed_and_owned_fds(tvm: TestVm) -> None:
    fd = os.dup(tvm.vm.fd)
    borrowed = Vm(fd, owned=False)
    assert borrowed.check_extension(lib.KVM_CAP_X86_MSR_FILTER) > 0
    borrowed.close()
    os.fstat(fd)  # still open: not ours to close
    owned = Vm(fd)
    owned.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    # a vCPU built from an existing fd (as from pidfd_getfd) sees the same vCPU
    with Vcpu(os.dup(tvm.vcpu.fd), vcpu_id=0) as vcpu:
        assert vcpu.get_regs().rip == tvm.symbols["_start"]
        assert vcpu.run_struct.exit_reason == tvm.vcpu.run_struct.exit_reason
    with pytest.raises(ValueError):
        vcpu.get_regs()


def test_nitro_cycle(tvm: TestVm) -> None:
    ring = Ring(1024)
    cycle = NitroCycle(tvm, ring)
    cycle.arm()
    n = 300
    cycle.run_until(n)
    # the guest runs its LSTAR entry for the last SYSCALL and traps on the next one
    assert tvm.vcpu.run() == lib.KVM_EXIT_DEBUG
    assert tvm.vcpu.run_struct.debug.arch.pc == tvm.symbols["ud_handler"]
    assert tvm.u64(COUNTER) == cycle.events == n
    assert tvm.u64(UD_MARKER) == 0, "the guest's own #UD handler ran"
    assert tvm.u64(FAULT_MARKER) == 0
    # EFER: the guest read its own value (SCE=1) through the MSR filter...
    assert cycle.rdmsr_exits == 1 and cycle.wrmsr_exits == 1
    assert tvm.u64(EFER_SEEN) & x86.EFER_SCE
    assert tvm.u64(EFER_SEEN) == x86.EFER_LME | x86.EFER_LMA | x86.EFER_SCE
    # ...while the real one stays trapped, also after the guest wrote it back
    assert not tvm.vcpu.get_sregs().efer & x86.EFER_SCE

    raws, lost = ring.drain()
    assert lost == 0 and len(raws) == n
    events = [Event(r) for r in raws]
    for i, ev in enumerate(events):
        assert ev.seq == i and ev.type == EVENT_SYSCALL and ev.vcpu == 0
        assert ev.regs.rax == i, "rax is the guest's counter when it made the call"
        assert ev.regs.rip == tvm.symbols["syscall_insn"]
    ev = events[-1]
    assert ev.version == lib.KVM_NITRO_ABI_VERSION and ev.size == 384
    assert ev.regs.lstar == tvm.symbols["syscall_entry"]
    assert ev.regs.star == STAR and ev.regs.sfmask == FMASK
    assert ev.regs.efer & x86.EFER_SCE, "the event shows the guest's own EFER"
    assert ev.regs.cr3 == 0x1000 and ev.regs.cr0 & x86.CR0_PG
    assert ev.regs.cs == 0x08 and ev.regs.ss == 0x10
    assert ev.regs.sysenter_eip == 0x12345678
    assert not ev.regs.rflags & x86.RFLAGS_RF
    assert ev.timestamp_ns > 0
    stamps = [e.timestamp_ns for e in events]
    assert stamps == sorted(stamps)


def test_completion_is_architectural(tvm: TestVm) -> None:
    """After a completed SYSCALL the guest is where SYSCALL would have put it."""
    cycle = NitroCycle(tvm)
    cycle.arm()
    cycle.run_until(1)
    regs = tvm.vcpu.get_regs()
    assert regs.rip == tvm.symbols["syscall_entry"]
    assert regs.rcx == tvm.symbols["syscall_insn"] + 2
    assert regs.r11 == x86.RFLAGS_FIXED
    assert regs.rsp == 0x1F0000, "the #UD frame was popped"


def test_genuine_ud_reaches_the_guest(tvm: TestVm) -> None:
    cycle = NitroCycle(tvm)
    cycle.arm()
    tvm.set_rip("ud2_insn")
    assert cycle.step() == lib.KVM_EXIT_DEBUG  # our breakpoint, but not a SYSCALL
    assert cycle.events == 0
    assert tvm.vcpu.run() == lib.KVM_EXIT_HLT
    assert tvm.u64(UD_MARKER) == 0xDEAD


def test_syscall_result() -> None:
    res = x86.syscall_result(0x1000, 0x10202 | x86.RFLAGS_RF, STAR, 0xFFFF8000, FMASK)
    assert res.rcx == 0x1002 and res.r11 == 0x202 and res.rip == 0xFFFF8000
    assert res.rflags == 0x2 and res.cs == 0x08 and res.ss == 0x10
