"""The userspace event ring: layout, order, overflow accounting, eventfd wake-ups."""

from __future__ import annotations

import os
import threading

import pytest

from libvirt_nitro.abi.event import EVENT_SYSCALL, EVENT_SYSRET, Event
from libvirt_nitro.abi.ring import EVENT_SIZE, Ring
from libvirt_nitro.errors import NitroAbiError
from libvirt_nitro.ioctl import ffi, lib


def _fill(rax: int, vcpu: int = 0, type: int = EVENT_SYSCALL):
    def fill(ev):
        ev.vcpu_id = vcpu
        ev.type = type
        ev.regs.rax = rax

    return fill


def test_header_is_the_abi_struct() -> None:
    ring = Ring(8)
    hdr = ffi.from_buffer("struct kvm_nitro_ring_header *", ring.buffer)
    assert hdr.version == lib.KVM_NITRO_ABI_VERSION
    assert hdr.header_size == ffi.sizeof("struct kvm_nitro_ring_header")
    assert hdr.slot_size == EVENT_SIZE and hdr.slot_count == 8
    assert hdr.data_offset % 4096 == 0
    assert len(ring.buffer) == hdr.data_offset + 8 * EVENT_SIZE
    ring.produce(_fill(0x1234))
    assert hdr.producer == 1 and hdr.consumer == 0
    slot = ffi.from_buffer("struct kvm_nitro_event *", ring.buffer[hdr.data_offset :])
    assert slot.regs.rax == 0x1234 and slot.version == 1 and slot.size == EVENT_SIZE


def test_fifo_and_wraparound() -> None:
    ring = Ring(4)
    seen = []
    for i in range(10):
        assert ring.produce(_fill(i, type=EVENT_SYSRET if i % 2 else EVENT_SYSCALL))
        raws, lost = ring.drain()
        assert lost == 0
        seen += [Event(r) for r in raws]
    assert [e.regs.rax for e in seen] == list(range(10))
    assert [e.seq for e in seen] == list(range(10))
    assert [e.direction for e in seen[:2]] == ["enter", "exit"]
    assert len(ring) == 0


def test_overflow_is_counted_and_reported() -> None:
    ring = Ring(8)
    results = [ring.produce(_fill(i)) for i in range(8 + 5)]
    assert results == [True] * 8 + [False] * 5
    assert ring.dropped == 5 and ring.header.dropped == 5
    raws, lost = ring.drain()
    assert lost == 5
    assert [Event(r).regs.rax for r in raws] == list(range(8))
    # the next event's seq jumps over the 5 lost ones
    ring.produce(_fill(99))
    raws, lost = ring.drain()
    assert lost == 0
    assert Event(raws[0]).seq == 13 and Event(raws[0]).regs.rax == 99
    assert ring.dropped == 5


def test_drain_limit() -> None:
    ring = Ring(16)
    for i in range(10):
        ring.produce(_fill(i))
    first, _ = ring.drain(limit=3)
    rest, _ = ring.drain()
    assert [Event(r).regs.rax for r in first + rest] == list(range(10))


def test_eventfd_signalled_when_ring_becomes_non_empty() -> None:
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        ring = Ring(8, notify_fd=efd)
        ring.produce(_fill(1))
        ring.produce(_fill(2))  # not empty before: no second wake-up
        assert os.eventfd_read(efd) == 1
        ring.drain()
        ring.produce(_fill(3))
        assert os.eventfd_read(efd) == 1
    finally:
        os.close(efd)


def test_concurrent_producers_single_consumer() -> None:
    ring = Ring(64)
    per_thread, nthreads = 2000, 4
    got: list[Event] = []
    lost_total = 0
    done = threading.Event()

    def producer(vcpu: int) -> None:
        for i in range(per_thread):
            ring.produce(_fill(i, vcpu=vcpu))

    threads = [threading.Thread(target=producer, args=(v,)) for v in range(nthreads)]
    for t in threads:
        t.start()

    def consume() -> None:
        nonlocal lost_total
        while not done.is_set() or len(ring):
            raws, lost = ring.drain()
            lost_total += lost
            got.extend(Event(r) for r in raws)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for t in threads:
        t.join()
    done.set()
    consumer.join()
    assert len(got) + lost_total == per_thread * nthreads
    assert lost_total == ring.dropped
    seqs = [e.seq for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for v in range(nthreads):  # per vCPU, order is kept
        raxes = [e.regs.rax for e in got if e.vcpu == v]
        assert raxes == sorted(raxes)


def test_from_buffer_validates() -> None:
    ring = Ring(4)
    copy = bytearray(ring.buffer)
    assert Ring.from_buffer(copy).slot_count == 4
    bad = bytearray(copy)
    bad[0] = 99  # version
    with pytest.raises(NitroAbiError):
        Ring.from_buffer(bad)
    with pytest.raises(NitroAbiError):
        Ring.from_buffer(copy[: len(copy) - 1])


def test_geometry_checked() -> None:
    with pytest.raises(ValueError):
        Ring(3)
    with pytest.raises(ValueError):
        Ring(4, slot_size=EVENT_SIZE - 8)


def test_event_wraps_raw_bytes() -> None:
    raw = bytearray(EVENT_SIZE)
    ev = ffi.from_buffer("struct kvm_nitro_event *", raw)
    ev.version, ev.size, ev.vcpu_id, ev.type = 1, EVENT_SIZE, 3, EVENT_SYSCALL
    ev.regs.rax, ev.regs.rip, ev.regs.cr3, ev.regs.cs = 59, 0xFFFF0000, 0x1000, 0x33
    event = Event(bytes(raw))
    assert event.raw == bytes(raw)
    assert (event.vcpu, event.type_name, event.regs.rax, event.regs.rip) == (
        3,
        "syscall",
        59,
        0xFFFF0000,
    )
    assert event.regs.cr3 == 0x1000 and event.regs.cs == 0x33
    assert event.regs.as_dict()["rax"] == 59
    with pytest.raises(AttributeError):
        event.regs.pad  # noqa: B018
    raw[0] = 7
    with pytest.raises(NitroAbiError):
        Event(bytes(raw))
