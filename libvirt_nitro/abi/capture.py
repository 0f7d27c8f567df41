"""Captured guest memory after an event (``kvm_nitro_capture.h``): the format, its parser,
the guest memory a decoder reads from it, and the reference producer the kernel matches.

A slot whose event has :data:`~.recipe.EVENT_F_CAPTURE` holds, at the event's ``size``, a
``struct kvm_nitro_capture_header`` (48 bytes: the task's pid, tgid and comm, the call's
number) and records: a ``struct kvm_nitro_capture`` (16 bytes: guest-virtual address,
length, flags) followed by the bytes, zero-padded to 8.

- :func:`parse` reads them (:class:`Captures`);
- :class:`CapturedMemory` is a :class:`~libvirt_nitro.strace.memory.GuestMemory` over the
  records of one event: a read inside a record succeeds, any other raises
  :class:`~libvirt_nitro.errors.NitroError` (the decoders' unreadable path), so the one
  decoder prints from captures exactly what it prints from live memory when the recipe
  covered its reads;
- :func:`capture` is what the kernel does at a trap, in Python, byte for byte: it builds
  the capture area of one event from a recipe, the registers and a guest memory whose
  readability is taken page by page.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..errors import NitroError
from ..introspect import Task
from .recipe import (
    ARG,
    ENTRY,
    EVENT_F_CAPTURE,
    EXIT,
    FIXED,
    IOV,
    RECIPE_VERSION,
    REG_RSP,
    RET,
    STRING,
    STRV,
    Recipe,
    Rule,
)

__all__ = [
    "HEADER",
    "RECORD",
    "HEADER_FIELDS",
    "RECORD_FIELDS",
    "H_TASK",
    "H_BUDGET",
    "H_NO_NR",
    "F_UNREADABLE",
    "F_TRUNCATED",
    "F_BUDGET",
    "PAGE_SIZE",
    "Record",
    "Captures",
    "CapturedMemory",
    "parse",
    "capture",
    "CAPTURE_REGS",
    "from_event",
]

#: ``struct kvm_nitro_capture_header`` (48 bytes): version, size, flags, nr_records,
#: bytes, pid, tgid, comm[16], nr, pad0, reserved.
HEADER = struct.Struct("<HHIIIii16sHHI")
HEADER_FIELDS = (
    ("version", 0, 2),
    ("size", 2, 2),
    ("flags", 4, 4),
    ("nr_records", 8, 4),
    ("bytes", 12, 4),
    ("pid", 16, 4),
    ("tgid", 20, 4),
    ("comm", 24, 16),
    ("nr", 40, 2),
    ("pad0", 42, 2),
    ("reserved", 44, 4),
)
#: ``struct kvm_nitro_capture`` (16 bytes): address, length, arg, kind, flags.
RECORD = struct.Struct("<QIBBH")
RECORD_FIELDS = (
    ("address", 0, 8),
    ("length", 8, 4),
    ("arg", 12, 1),
    ("kind", 13, 1),
    ("flags", 14, 2),
)
assert HEADER.size == 48 and RECORD.size == 16

H_TASK, H_BUDGET, H_NO_NR = 1, 2, 4
F_UNREADABLE, F_TRUNCATED, F_BUDGET = 1, 2, 4
#: Guest page size: reads are page by page, a page readable or not as a whole.
PAGE_SIZE = 4096
#: Registers by rule index: the six argument registers, then rsp.
CAPTURE_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9", "rsp")
_U64 = (1 << 64) - 1


class Record(NamedTuple):
    """One captured range: *data* is guest memory at *address* (guest-virtual)."""

    address: int
    data: bytes
    arg: int
    kind: int
    flags: int


class Captures(NamedTuple):
    """The capture area of one event: header fields and records."""

    flags: int
    pid: int
    tgid: int
    comm: str
    nr: int
    records: tuple[Record, ...]

    @property
    def has_task(self) -> bool:
        """The kernel read the current task (pid, tgid, comm are valid)."""
        return bool(self.flags & H_TASK)


#: The header as a consumer reads it: version, size, flags, nr_records, bytes, then pid,
#: tgid and comm as one 24-byte key (its task).
_HEAD_USED = struct.Struct("<HHIII24s")


def _area(slot: Any, offset: int, ranges: bool = False) -> tuple[int, bytes, list[tuple]]:
    """The header's flags, its task key (pid, tgid, comm: 24 bytes) and the records
    (address, data, arg, kind, flags) of the capture area at *offset* of *slot*; with
    *ranges*, what :class:`CapturedMemory` keeps of them instead: (address, end, data) of
    the records that hold or may hold bytes.

    :raises NitroError: a version, size or record running past the slot
    """
    if len(slot) < offset + HEADER.size:
        raise NitroError(f"no capture header in {len(slot)} bytes at {offset}")
    version, size, flags, count, nbytes, key = _HEAD_USED.unpack_from(slot, offset)
    if version != RECIPE_VERSION or size < HEADER.size:
        raise NitroError(f"capture header version {version} size {size}")
    pos = offset + size
    end = pos + nbytes
    if end > len(slot):
        raise NitroError(f"captures of {nbytes} bytes run past the {len(slot)}-byte slot")
    records = []
    unpack = RECORD.unpack_from
    for _ in range(count):
        address, length, arg, kind, rflags = unpack(slot, pos)
        start = pos + 16
        pos = start + ((length + 7) & ~7)
        if pos > end:
            raise NitroError("capture record runs past its area")
        if not ranges:
            records.append((address, bytes(slot[start : start + length]), arg, kind, rflags))
        elif length or not rflags & F_UNREADABLE:
            records.append((address, address + length, bytes(slot[start : start + length])))
    return flags, key, records


def parse(slot: bytes | memoryview, offset: int) -> Captures:
    """The captures at *offset* of *slot* (the event's ``size``).

    :raises NitroError: a version, size or record running past the slot
    """
    flags, _, records = _area(slot, offset)
    _, _, _, _, _, pid, tgid, comm, nr, _, _ = HEADER.unpack_from(slot, offset)
    name = bytes(comm).split(b"\0", 1)[0].decode(errors="replace")
    return Captures(flags, pid, tgid, name, nr, tuple(Record(*r) for r in records))


class CapturedMemory:
    """The guest memory of one event, as captured: a
    :class:`~libvirt_nitro.strace.memory.GuestMemory` whose readable bytes are the
    records' (guest-virtual addresses of the traced process)."""

    __slots__ = ("_ranges",)

    def __init__(self, records: Sequence[Record]) -> None:
        self._ranges = [
            (r.address, r.address + len(r.data), r.data)
            for r in records
            if r.data or not r.flags & F_UNREADABLE
        ]

    def read(self, address: int, size: int) -> bytes:
        """*size* bytes at *address*.

        :raises NitroError: not inside one captured record
        """
        end = address + size
        for start, stop, data in self._ranges:
            if start <= address and end <= stop:
                return data[address - start : end - start]
        raise NitroError(f"not captured {address:#x}+{size}")

    def read_cstring(self, address: int, limit: int) -> tuple[bytes, bool]:
        """The C string at *address* (without its NUL, at most *limit* bytes) and whether
        it was cut at *limit*.

        :raises NitroError: no record holds its first byte, or it runs past the captured
            bytes before its NUL or *limit*
        """
        for start, stop, data in self._ranges:
            if start <= address < stop:
                at = address - start
                nul = data.find(b"\0", at, at + limit)
                if nul != -1:
                    return data[at:nul], False
                if stop - address >= limit:
                    return data[at : at + limit], True
        raise NitroError(f"string at {address:#x} not captured")


_TASKS: dict[bytes, Task] = {}


def _task(key: bytes) -> Task:
    """The :class:`~libvirt_nitro.introspect.Task` of a header's pid, tgid and comm (the
    24 bytes of *key*), cached: a few threads make most calls."""
    task = _TASKS.get(key)
    if task is None:
        if len(_TASKS) > 4096:
            _TASKS.clear()
        pid, tgid = struct.unpack_from("<ii", key)
        comm = key[8:].split(b"\0", 1)[0].decode(errors="replace")
        task = _TASKS[key] = Task(tgid, pid, comm)
    return task


def from_event(event: Any) -> tuple[Task | None, CapturedMemory] | None:
    """The task (:class:`~libvirt_nitro.introspect.Task`, None when the kernel could not
    read it) and the captured memory of *event* (an :class:`~.event.Event` whose ``raw``
    holds its captures, as :meth:`~.ring.Ring.drain` gives it), or None when it carries no
    captures.

    :raises NitroError: malformed captures
    """
    if not event.flags & EVENT_F_CAPTURE:
        return None
    flags, key, ranges = _area(event.raw, event.size, ranges=True)
    memory = CapturedMemory.__new__(CapturedMemory)
    memory._ranges = ranges
    task = _task(key) if flags & H_TASK else None
    return task, memory


# ------------------------------------------------------------- the reference producer


def _signed(value: int) -> int:
    value &= _U64
    return value - (1 << 64) if value >> 63 else value


def _read_prefix(memory: Any, address: int, size: int) -> bytes:
    """The readable bytes at *address*, at most *size* (which do not cross a page): all of
    them, or (a read failed) the longest readable prefix. On a guest, readability is per
    page, so this is the kernel's one read of the page; a test memory of byte ranges gets
    the same answer a page of it would give."""
    try:
        data = memory.read(address, size)
        if len(data) == size:
            return data
    except NitroError:
        pass
    lo, hi, best = 0, size - 1, b""  # bisect: readable prefixes are nested
    while lo <= hi:
        mid = (lo + hi + 1) // 2
        try:
            data = memory.read(address, mid) if mid else b""
        except NitroError:
            hi = mid - 1
            continue
        best, lo = data, mid + 1
        if mid == 0:
            break
    return best


def _copy(memory: Any, address: int, size: int) -> tuple[bytes, bool]:
    """Up to *size* bytes at *address*, page by page: ``(bytes, stopped at an unreadable
    byte)``."""
    out = bytearray()
    while len(out) < size:
        at = (address + len(out)) & _U64
        chunk = min(size - len(out), PAGE_SIZE - (at % PAGE_SIZE))
        data = _read_prefix(memory, at, chunk)
        out += data
        if len(data) < chunk:
            return bytes(out), True
    return bytes(out), False


def _copy_string(memory: Any, address: int, size: int) -> tuple[bytes, bool, bool]:
    """The string at *address*, with its NUL, at most *size* bytes: ``(bytes, NUL found,
    stopped at an unreadable byte)``."""
    out = bytearray()
    while len(out) < size:
        at = (address + len(out)) & _U64
        chunk = min(size - len(out), PAGE_SIZE - (at % PAGE_SIZE))
        data = _read_prefix(memory, at, chunk)
        nul = data.find(b"\0")
        if nul != -1:
            out += data[: nul + 1]
            return bytes(out), True, False
        out += data
        if len(data) < chunk:
            return bytes(out), False, True
    return bytes(out), False, False


class _Writer:
    """The capture area being built, with the event budget."""

    def __init__(self, budget: int):
        self.budget = budget
        self.used = HEADER.size
        self.parts: list[bytes] = []
        self.count = 0
        self.full = False

    def room(self) -> int:
        """Bytes of data the next record may hold (rounded down to 8), or -1: none fits."""
        room = self.budget - self.used - RECORD.size
        return -1 if room < 0 else room & ~7

    def add(self, address: int, data: bytes, arg: int, kind: int, flags: int) -> None:
        padded = (len(data) + 7) & ~7
        self.parts.append(RECORD.pack(address & _U64, len(data), arg, kind, flags))
        self.parts.append(data + bytes(padded - len(data)))
        self.used += RECORD.size + padded
        self.count += 1


def _record(
    out: _Writer, memory: Any, address: int, want: int, flags: int, rule: Rule, kind: int
) -> bytes | None:
    """Copy *want* bytes at *address* as one record (cut at the budget); the bytes, or
    None when no record fits any more."""
    room = out.room()
    if room < 0:
        out.full = True
        return None
    if want > room:
        want, flags = room, flags | F_BUDGET
    data, unreadable = _copy(memory, address, want)
    out.add(address, data, rule.arg, kind, flags | (F_UNREADABLE if unreadable else 0))
    return data


def _string(out: _Writer, memory: Any, address: int, size: int, rule: Rule) -> bool:
    """One STRING record; False when no record fits any more."""
    room = out.room()
    if room < 0:
        out.full = True
        return False
    data, found, unreadable = _copy_string(memory, address, min(size, room))
    flags = 0
    if unreadable:
        flags = F_UNREADABLE
    elif not found:
        flags = F_BUDGET if size > room else F_TRUNCATED
    out.add(address, data, rule.arg, STRING, flags)
    return True


def _count(n: int, rule: Rule) -> tuple[int, int]:
    """*n* elements limited by the rule: ``(count, flags)``."""
    if rule.max_count and n > rule.max_count:
        return rule.max_count, F_TRUNCATED
    return n, 0


def _apply(out: _Writer, rule: Rule, regs: Sequence[int], ret: int, memory: Any) -> None:
    address = (regs[rule.arg] + rule.offset) & _U64
    if regs[rule.arg] == 0:
        return
    kind = rule.kind
    if kind == STRING:
        _string(out, memory, address, rule.size, rule)
    elif kind == FIXED:
        _record(out, memory, address, rule.size, 0, rule, FIXED)
    elif kind in (ARG, RET):
        if kind == ARG:
            raw = regs[rule.count_arg] & _U64
            n = min(raw + (1 << rule.count_shift) - 1, _U64) >> rule.count_shift
        else:
            n = max(_signed(ret), 0)
        n, flags = _count(n, rule)
        _record(out, memory, address, min(n * rule.size, _U64), flags, rule, kind)
    elif kind == STRV:
        room = out.room()
        if room < 0:
            out.full = True
            return
        limit = rule.max_count or (1 << 32)
        pointers: list[int] = []
        flags = 0
        unreadable = False
        while True:
            if len(pointers) == limit:
                flags |= F_TRUNCATED
                break
            if 8 * (len(pointers) + 1) > room:
                flags |= F_BUDGET
                break
            data, unreadable = _copy(memory, address + 8 * len(pointers), 8)
            if unreadable:
                flags |= F_UNREADABLE
                break
            pointers.append(struct.unpack("<Q", data)[0])
            if pointers[-1] == 0:
                break
        out.add(address, struct.pack(f"<{len(pointers)}Q", *pointers), rule.arg, STRV, flags)
        if rule.size:
            for p in pointers:
                if p and not _string(out, memory, p, rule.size, rule):
                    return
    elif kind == IOV:
        n, flags = _count(regs[rule.count_arg] & _U64, rule)
        data = _record(out, memory, address, min(n * 16, _U64), flags, rule, IOV)
        if data is None:
            return
        for i in range(len(data) // 16):
            base, length = struct.unpack_from("<QQ", data, 16 * i)
            if base and length:
                if _record(out, memory, base, min(length, rule.size), 0, rule, FIXED) is None:
                    return


def capture(
    recipe: Recipe,
    when: int,
    nr: int | None,
    regs: Sequence[int],
    ret: int,
    memory: Any,
    task: tuple[int, int, bytes] | None = None,
) -> bytes:
    """The capture area the kernel writes after one event: header and records.

    *when* is :data:`~.recipe.ENTRY` (SYSCALL) or :data:`~.recipe.EXIT` (SYSRET); *nr* the
    call's number (rax at entry, ``orig_ax`` at exit; None: unknown); *regs* the seven
    registers of :data:`CAPTURE_REGS`; *ret* rax at the exit; *memory* a
    :class:`~libvirt_nitro.strace.memory.GuestMemory` taken page by page (a page either
    reads or is unreadable); *task* ``(pid, tgid, comm)`` as read from ``task_struct``, or
    None when it could not be read.
    """
    if when not in (ENTRY, EXIT):
        raise ValueError(f"when {when}")
    out = _Writer(recipe.event_budget)
    flags = 0
    if nr is None:
        flags |= H_NO_NR
    else:
        for rule in recipe.for_call(nr, when):
            _apply(out, rule, regs, ret, memory)
            if out.full:
                flags |= H_BUDGET
                break
    pid = tgid = 0
    comm = b""
    if task is not None:
        flags |= H_TASK
        pid, tgid, comm = task
    body = b"".join(out.parts)
    header = HEADER.pack(
        RECIPE_VERSION,
        HEADER.size,
        flags,
        out.count,
        len(body),
        pid,
        tgid,
        comm[:16].ljust(16, b"\0"),
        0 if nr is None else nr,
        0,
        0,
    )
    return header + body


assert CAPTURE_REGS.index("rsp") == REG_RSP
