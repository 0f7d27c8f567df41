"""The Nitro ioctls through ``libvirt_nitro.ioctl``, on the patched KVM of the test bed.

The same calls the kernel backend makes: KVM_CHECK_EXTENSION(KVM_CAP_NITRO), KVM_NITRO_ATTACH
on a VM fd, SET/GET_TRAPS, the ring mmap'ed from the nitro fd read through
:class:`~libvirt_nitro.abi.ring.Ring`, and a nested guest
(:class:`~libvirt_nitro.testing.kvmvm.TestVm`) whose SYSCALL loop is trapped in the kernel,
events landing in that ring.
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from libvirt_nitro import x86
from libvirt_nitro.abi.event import EVENT_SYSCALL, Event
from libvirt_nitro.abi.ring import EVENT_SIZE, Ring
from libvirt_nitro.errors import KvmIoctlError
from libvirt_nitro.ioctl import Kvm, KvmFd, Vm, ffi, lib
from libvirt_nitro.testing.kvmvm import COUNTER, FAULT_MARKER, UD_MARKER, TestVm

ABI = lib.KVM_NITRO_ABI_VERSION
#: Seconds the nested guest may take to produce the events a test waits for.
GUEST_DEADLINE = 60.0


def attach(vm: Vm) -> KvmFd:
    """KVM_NITRO_ATTACH on *vm*'s own fd (pidfd -1, vm_fd -1): the nitro fd, owned."""
    req = ffi.new(
        "struct kvm_nitro_attach *",
        {"version": ABI, "size": ffi.sizeof("struct kvm_nitro_attach"), "pidfd": -1, "vm_fd": -1},
    )
    return KvmFd(vm.ioctl("KVM_NITRO_ATTACH", req))


def trap_config(traps: int, ring_slots: int = 0, **fields: Any) -> Any:
    """A ``struct kvm_nitro_trap_config *`` with the version and size filled in."""
    size = ffi.sizeof("struct kvm_nitro_trap_config")
    return ffi.new(
        "struct kvm_nitro_trap_config *",
        {"version": ABI, "size": size, "traps": traps, "ring_slots": ring_slots, **fields},
    )


def get_traps(nitro: KvmFd) -> Any:
    """KVM_NITRO_GET_TRAPS into a buffer first filled with 0xff (so nothing passes by luck)."""
    got = trap_config(0)
    ffi.memmove(got, b"\xff" * ffi.sizeof(got[0]), ffi.sizeof(got[0]))
    nitro.ioctl("KVM_NITRO_GET_TRAPS", got)
    return got


def ring_bytes(slots: int) -> int:
    """Bytes of the ring mapping: the header page, then the slots rounded up to pages."""
    data = slots * EVENT_SIZE
    return mmap.PAGESIZE + (data + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE


def map_ring(nitro: KvmFd, slots: int) -> mmap.mmap:
    """The ring of *nitro* (armed with *slots* slots), mapped shared and writable."""
    return mmap.mmap(
        nitro.fd,
        ring_bytes(slots),
        mmap.MAP_SHARED,
        mmap.PROT_READ | mmap.PROT_WRITE,
        offset=lib.KVM_NITRO_RING_PGOFF * mmap.PAGESIZE,
    )


def readable(fd: KvmFd) -> bool:
    """Whether *fd* polls readable right now."""
    poller = select.poll()
    poller.register(fd.fd, select.POLLIN)
    return bool(poller.poll(0))


def test_capability_reports_the_abi_version(kvm: Kvm, vm: Vm) -> None:
    assert kvm.check_extension(lib.KVM_CAP_NITRO) == ABI
    assert vm.check_extension(lib.KVM_CAP_NITRO) == ABI


def test_attach_on_vm_fd(vm: Vm) -> None:
    with attach(vm) as nitro:
        assert os.readlink(f"/proc/self/fd/{nitro.fd}") == "anon_inode:kvm-nitro"
        assert not os.get_inheritable(nitro.fd)
        with pytest.raises(KvmIoctlError) as busy:
            attach(vm)
        assert busy.value.errno == errno.EBUSY
    # released with the fd: the VM can be attached again
    attach(vm).close()


def test_trap_config_roundtrip(vm: Vm) -> None:
    with attach(vm) as nitro:
        got = get_traps(nitro)
        assert (got.version, got.size) == (ABI, ffi.sizeof(got[0]))
        assert (got.traps, got.delivery, got.flags, got.ring_slots) == (0, 0, 0, 4096)

        want = trap_config(
            lib.KVM_NITRO_TRAP_SYSCALL | lib.KVM_NITRO_TRAP_SYSRET,
            1024,
            flags=lib.KVM_NITRO_FILTER_ENABLE,
        )
        want.syscall_filter[0] = 1 << 1 | 1 << 60
        want.syscall_filter[7] = 1 << 63
        nitro.ioctl("KVM_NITRO_SET_TRAPS", want)
        got = get_traps(nitro)
        assert ffi.buffer(got)[:] == ffi.buffer(want)[:]


def test_ring_maps_as_a_valid_header(vm: Vm) -> None:
    with attach(vm) as nitro:
        nitro.ioctl("KVM_NITRO_SET_TRAPS", trap_config(lib.KVM_NITRO_TRAP_SYSCALL, 256))
        buf = map_ring(nitro, 256)
        ring = Ring.from_buffer(buf)
        hdr = ring.header
        assert (hdr.version, hdr.header_size) == (ABI, ffi.sizeof("struct kvm_nitro_ring_header"))
        assert (ring.slot_count, ring.slot_size, hdr.data_offset) == (256, EVENT_SIZE, 4096)
        assert (len(ring), ring.dropped) == (0, 0)
        assert ring.drain() == ([], 0)
        assert not readable(nitro)
        del ring, hdr
        buf.close()


@pytest.fixture
def traced_vm() -> Iterator[TestVm]:
    """A :class:`TestVm` without MSR filter, started at its SYSCALL loop.

    Its ``_start`` writes EFER back with WRMSR, which KVM refuses with #GP when the vCPU has
    no CPUID (LM not set): TestVm sets none and libvirt_nitro.ioctl binds no KVM_SET_CPUID2.
    """
    with TestVm(msr_filter=False) as tvm:
        tvm.set_rip("syscall_loop")
        yield tvm


def run_for(tvm: TestVm, seconds: float) -> None:
    """KVM_RUN the guest for about *seconds* (its SYSCALL loop never exits to userspace:
    SIGALRM interrupts KVM_RUN; the timer repeats in case the first one fires before
    KVM_RUN is entered)."""
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds, seconds)
        try:
            reason = tvm.vcpu.run()
        except KvmIoctlError as exc:
            assert exc.errno == errno.EINTR, exc
        else:
            rip = tvm.vcpu.get_regs().rip
            pytest.fail(f"the guest exited (reason {reason}) at rip {rip:#x}", pytrace=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_nested_guest_syscalls_land_in_the_ring(traced_vm: TestVm) -> None:
    tvm, slots, wanted = traced_vm, 1024, 3000
    syscall_insn = tvm.symbols["syscall_insn"]
    with attach(tvm.vm) as nitro:
        nitro.ioctl("KVM_NITRO_SET_TRAPS", trap_config(lib.KVM_NITRO_TRAP_SYSCALL, slots))
        buf = map_ring(nitro, slots)
        ring = Ring.from_buffer(buf)
        events: list[Event] = []
        lost = 0
        deadline = time.monotonic() + GUEST_DEADLINE
        while len(events) < wanted:
            if time.monotonic() > deadline:
                pytest.fail(f"{len(events)}/{wanted} events in {GUEST_DEADLINE:.0f} s")
            run_for(tvm, 0.05)
            if len(ring):
                assert readable(nitro), "ring non-empty but the nitro fd does not poll readable"
            batch, dropped = ring.drain()
            lost += dropped
            events += [Event(raw) for raw in batch]

        # every trapped SYSCALL is one event: seq counts them all (dropped ones included),
        # rax is the guest's counter at the instruction, so rax == seq
        seqs = [ev.seq for ev in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        for ev in events:
            assert (ev.version, ev.size, ev.vcpu_id) == (ABI, EVENT_SIZE, 0)
            assert ev.type == EVENT_SYSCALL
            assert (ev.regs.rax, ev.regs.rip) == (ev.seq, syscall_insn), (
                f"event seq {ev.seq}: rax {ev.regs.rax}, rip {ev.regs.rip:#x}"
            )
            assert ev.regs.efer & x86.EFER_SCE, "the event shows the guest's own EFER.SCE"
            assert ev.flags & lib.KVM_NITRO_EVENT_F_LONG_MODE
        # nothing lost silently: every event was read or counted as dropped, and the seq
        # gaps (drops before the last event read) are among the counted drops
        assert (len(events), lost) == (ring.header.producer, ring.dropped)
        assert seqs[-1] + 1 - len(seqs) <= lost
        # the guest completed every trapped SYSCALL (the last may still be in its handler)
        assert ring.header.producer + ring.dropped - tvm.u64(COUNTER) in (0, 1)
        assert tvm.u64(UD_MARKER) == 0 and tvm.u64(FAULT_MARKER) == 0
        assert tvm.vcpu.get_sregs().efer & x86.EFER_SCE, "KVM_GET_SREGS shows the guest's EFER"
        del ring, events
        buf.close()

    # released: the guest runs on untrapped, and the counter goes on growing
    counter = tvm.u64(COUNTER)
    run_for(tvm, 0.05)
    assert tvm.u64(COUNTER) > counter
    assert tvm.u64(UD_MARKER) == 0
