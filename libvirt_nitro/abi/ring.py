"""The event ring of kvm_nitro.h, in userspace.

One buffer laid out exactly as the kernel would share it: ``struct
kvm_nitro_ring_header`` at offset 0 and ``slot_count`` slots of ``slot_size`` bytes
from ``data_offset``, each holding a ``struct kvm_nitro_event``.  Every backend uses a
:class:`Ring` as its event queue; the kernel backend maps the kernel's ring with
:meth:`Ring.from_buffer`.

Producers (one per vCPU thread, or several) are serialised by a lock; there is one
consumer.  A full ring never overwrites unread events: the new event is dropped,
``dropped`` grows and the event's sequence number is consumed, so the consumer sees
both how many were lost (:meth:`Ring.drain` returns the growth of ``dropped``) and
where (a jump in ``seq``).  An optional eventfd is signalled when the ring goes from
empty to non-empty, so the consumer can sleep in ``poll``.

A producer in this process may attach a Python object to an event (the gdbstub backend
attaches the :class:`~libvirt_nitro.pipeline.SyscallRecord` it made at the trap): it is kept
with the slot, dropped with the event if the ring is full, and handed back beside the event's
bytes by :meth:`Ring.drain_with_payloads`. The kernel's ring has none.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from collections.abc import Callable
from typing import Any

from ..errors import NitroAbiError
from ..ioctl import ffi, lib

__all__ = ["Ring", "EVENT_SIZE", "HEADER_SIZE", "ABI_VERSION"]

ABI_VERSION: int = lib.KVM_NITRO_ABI_VERSION
EVENT_SIZE: int = ffi.sizeof("struct kvm_nitro_event")
HEADER_SIZE: int = ffi.sizeof("struct kvm_nitro_ring_header")


#: kvm_nitro_capture.h: KVM_NITRO_EVENT_F_CAPTURE, and the capture header's size and
#: ``bytes`` field (see :mod:`.capture`, which checks them against the header).
_F_CAPTURE = 1 << 4
_SIZE_FLAGS = struct.Struct("<2xH6xH")  # kvm_nitro_event.size at 2, .flags at 10
_CAPTURE_SIZES = struct.Struct("<2xH8xI")  # kvm_nitro_capture_header.size at 2, .bytes at 12


def _filled(view: memoryview, off: int, slot_size: int) -> int:
    """Bytes of the slot at *off* the producer filled: the event and its captures."""
    size, flags = _SIZE_FLAGS.unpack_from(view, off)
    if not flags & _F_CAPTURE:
        return max(size, EVENT_SIZE) if size <= slot_size else slot_size
    if size + _CAPTURE_SIZES.size > slot_size:
        return slot_size
    header, nbytes = _CAPTURE_SIZES.unpack_from(view, off + size)
    return min(size + header + nbytes, slot_size)


def _whole(view: memoryview, off: int, slot_size: int) -> int:
    return slot_size


class Ring:
    """A ``struct kvm_nitro_ring_header`` + slots over a writable buffer.

    ``Ring(slot_count)`` allocates an anonymous mapping (slots page-aligned, as the
    kernel's); :meth:`from_buffer` wraps an existing, already initialised one.
    """

    def __init__(
        self,
        slot_count: int = 4096,
        *,
        slot_size: int = EVENT_SIZE,
        notify_fd: int | None = None,
    ) -> None:
        if slot_count <= 0 or slot_count & (slot_count - 1):
            raise ValueError(f"slot_count must be a power of two, not {slot_count}")
        if slot_size < EVENT_SIZE or slot_size % 8:
            raise ValueError(f"slot_size must be a multiple of 8 >= {EVENT_SIZE}")
        data_offset = mmap.PAGESIZE
        buf = mmap.mmap(-1, data_offset + slot_count * slot_size)
        hdr = ffi.cast("struct kvm_nitro_ring_header *", ffi.from_buffer(buf))
        hdr.version = ABI_VERSION
        hdr.header_size = HEADER_SIZE
        hdr.slot_size = slot_size
        hdr.slot_count = slot_count
        hdr.data_offset = data_offset
        self._setup(buf, notify_fd)

    @classmethod
    def from_buffer(cls, buf: Any, notify_fd: int | None = None) -> Ring:
        """Wrap *buf* (a writable buffer: the kernel's mmap'd ring, or a copy).

        :raises NitroAbiError: the header's version, sizes or geometry are not usable.
        """
        ring = cls.__new__(cls)
        ring._setup(buf, notify_fd)
        return ring

    def _setup(self, buf: Any, notify_fd: int | None) -> None:
        self._buf = buf
        self._view = memoryview(buf)
        base = ffi.from_buffer(buf)
        hdr = ffi.cast("struct kvm_nitro_ring_header *", base)
        if hdr.version != ABI_VERSION:
            raise NitroAbiError(f"ring version {hdr.version}, expected {ABI_VERSION}")
        count, size, offset = hdr.slot_count, hdr.slot_size, hdr.data_offset
        if hdr.header_size < HEADER_SIZE or offset < hdr.header_size:
            raise NitroAbiError(f"ring header_size {hdr.header_size}, data_offset {offset}")
        if count == 0 or count & (count - 1) or size < EVENT_SIZE or size % 8:
            raise NitroAbiError(f"ring geometry {count} slots of {size} bytes")
        if offset + count * size > len(self._view):
            raise NitroAbiError("ring buffer shorter than its header says")
        self._hdr = hdr
        self._mask = count - 1
        self._slot_size = size
        self._offsets = [offset + i * size for i in range(count)]
        self._slots = [ffi.cast("struct kvm_nitro_event *", base + off) for off in self._offsets]
        self._lock = threading.Lock()
        self._seen_dropped = hdr.dropped
        self._payloads: list[Any] = [None] * count
        self.notify_fd = notify_fd

    # --------------------------------------------------------------- geometry
    @property
    def header(self) -> Any:
        """The ``struct kvm_nitro_ring_header *`` (read it; only the ring writes it)."""
        return self._hdr

    @property
    def slot_count(self) -> int:
        """Number of slots (a power of two)."""
        return self._mask + 1

    @property
    def slot_size(self) -> int:
        """Bytes per slot."""
        return self._slot_size

    @property
    def buffer(self) -> Any:
        """The underlying buffer: header + slots, the bytes the kernel would share."""
        return self._buf

    @property
    def dropped(self) -> int:
        """Events lost to overflow since the ring was created."""
        return self._hdr.dropped

    def __len__(self) -> int:
        """Events written and not yet consumed."""
        return self._hdr.producer - self._hdr.consumer

    # --------------------------------------------------------------- producer
    def produce(self, fill: Callable[[Any], None], payload: Any = None) -> bool:
        """Write one event: call *fill* with the next slot's ``struct kvm_nitro_event *``
        (version, size and seq are already set; zeroed otherwise), then publish it with
        *payload* (a Python object that travels with it).

        Returns False, counting the event in ``dropped``, if the ring is full.  Safe to
        call from several producer threads.
        """
        hdr = self._hdr
        with self._lock:
            producer = hdr.producer
            seq = producer + hdr.dropped
            if producer - hdr.consumer > self._mask:
                hdr.dropped += 1
                dropped = True
            else:
                ev = self._slots[producer & self._mask]
                ffi.memmove(ev, b"\0" * self._slot_size, self._slot_size)
                ev.version = ABI_VERSION
                ev.size = EVENT_SIZE
                ev.seq = seq
                fill(ev)
                self._payloads[producer & self._mask] = payload
                hdr.producer = producer + 1  # publish (the GIL orders the stores)
                dropped = False
            # wake the consumer if it may have seen the ring empty (also for a drop,
            # so that the loss is reported promptly)
            wake = hdr.consumer == producer
        if wake and self.notify_fd is not None:
            os.eventfd_write(self.notify_fd, 1)
        return not dropped

    def push(self, event: bytes, payload: Any = None) -> bool:
        """Write a ready ``struct kvm_nitro_event`` (raw bytes, at most a slot) with
        *payload*; its ``seq`` is replaced by the ring's.  Returns False if dropped
        (counted)."""
        if len(event) > self._slot_size:
            raise ValueError(f"event of {len(event)} bytes exceeds the {self._slot_size}-byte slot")

        def fill(ev: Any) -> None:
            seq = ev.seq
            ffi.memmove(ev, event, len(event))
            ev.seq = seq

        return self.produce(fill, payload)

    # --------------------------------------------------------------- consumer
    def drain(self, limit: int | None = None) -> tuple[list[bytes], int]:
        """Consume up to *limit* events (all if None): return their slot bytes, oldest
        first, and the number of events dropped since the previous drain.

        Single consumer only.  Each returned ``bytes`` is the part of its slot the
        producer filled: the event (its own ``size`` field says how much of it is the
        event) and, when it carries ``KVM_NITRO_EVENT_F_CAPTURE``, its captures
        (``kvm_nitro_capture.h``); the whole slot when that cannot be told.
        """
        slots, lost = self.drain_with_payloads(limit)
        return [raw for raw, _ in slots], lost

    def drain_with_payloads(self, limit: int | None = None) -> tuple[list[tuple[bytes, Any]], int]:
        """As :meth:`drain`, each event's bytes paired with its payload (None if none)."""
        hdr = self._hdr
        out: list[tuple[bytes, Any]] = []
        payloads = self._payloads
        view, offsets, mask, size = self._view, self._offsets, self._mask, self._slot_size
        filled = _filled if size > EVENT_SIZE else _whole
        while limit is None or len(out) < limit:
            producer = hdr.producer
            consumer = hdr.consumer
            if producer == consumer:
                break
            if limit is not None:
                producer = min(producer, consumer + limit - len(out))
            for i in range(consumer, producer):
                off = offsets[i & mask]
                out.append((bytes(view[off : off + filled(view, off, size)]), payloads[i & mask]))
                payloads[i & mask] = None
            hdr.consumer = producer
            # kvm_nitro.h's wake-up rule: a full barrier before `producer` is read again,
            # or a kernel producer may miss this store while we miss its event.
            lib.nitro_ring_fence()
        dropped = hdr.dropped
        lost, self._seen_dropped = dropped - self._seen_dropped, dropped
        return out, lost
