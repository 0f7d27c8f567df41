"""The capture recipe of ``kernel/include/uapi/linux/kvm_nitro_capture.h`` in Python:
``struct kvm_nitro_capture_rule`` and ``struct kvm_nitro_recipe``, packed as the kernel
reads them (``KVM_NITRO_SET_RECIPE``).

Pure ``struct`` formats, each checked against its C size here and against gcc's
``offsetof`` under ``-m64`` and ``-m32`` by ``tests/test_capture_abi.py``. Which rules a
tracer hands the kernel comes from the decoder's signature table
(:func:`libvirt_nitro.strace.recipe.capture_rules`); this module only lays them out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "RECIPE_VERSION",
    "EVENT_F_CAPTURE",
    "GS_NONE",
    "GS_GS_BASE",
    "GS_KERNEL_GS_BASE",
    "ENTRY",
    "EXIT",
    "STRING",
    "FIXED",
    "ARG",
    "RET",
    "STRV",
    "IOV",
    "KIND_NAMES",
    "REG_RSP",
    "RULE",
    "RECIPE",
    "RULE_FIELDS",
    "RECIPE_FIELDS",
    "STACK_ORIG_AX",
    "KVM_NITRO_SET_RECIPE",
    "Rule",
    "Recipe",
]

RECIPE_VERSION = 1
#: ``kvm_nitro_event.flags``: a ``struct kvm_nitro_capture_header`` follows the event.
EVENT_F_CAPTURE = 1 << 4

GS_NONE, GS_GS_BASE, GS_KERNEL_GS_BASE = 0, 1, 2
#: ``kvm_nitro_capture_rule.when``
ENTRY, EXIT = 1, 2
#: ``kvm_nitro_capture_rule.kind``
STRING, FIXED, ARG, RET, STRV, IOV = 1, 2, 3, 4, 5, 6
KIND_NAMES = {STRING: "string", FIXED: "fixed", ARG: "arg", RET: "ret", STRV: "strv", IOV: "iov"}
#: The register index of ``rsp`` in a rule (0..5 are rdi, rsi, rdx, r10, r8, r9).
REG_RSP = 6

#: ``offsetof(pt_regs.orig_ax)`` from ``task->stack`` on x86-64 without KASAN:
#: THREAD_SIZE (16 KiB) - sizeof(struct pt_regs) (168) + offsetof(orig_ax) (120).
STACK_ORIG_AX = 16384 - 168 + 120

#: ``struct kvm_nitro_capture_rule`` (24 bytes): nr, when, arg, kind, count_arg,
#: count_shift, pad0, offset, size, max_count, reserved.
RULE = struct.Struct("<HBBBBBBiIII")
RULE_FIELDS = (
    ("nr", 0, 2),
    ("when", 2, 1),
    ("arg", 3, 1),
    ("kind", 4, 1),
    ("count_arg", 5, 1),
    ("count_shift", 6, 1),
    ("pad0", 7, 1),
    ("offset", 8, 4),
    ("size", 12, 4),
    ("max_count", 16, 4),
    ("reserved", 20, 4),
)
#: ``struct kvm_nitro_recipe`` (96 bytes).
RECIPE = struct.Struct("<HHIBBHIIIQIIIIIIQ4Q")
RECIPE_FIELDS = (
    ("version", 0, 2),
    ("size", 2, 2),
    ("flags", 4, 4),
    ("gs_at_entry", 8, 1),
    ("gs_at_exit", 9, 1),
    ("task_comm_len", 10, 2),
    ("task_pid", 12, 4),
    ("task_tgid", 16, 4),
    ("task_comm", 20, 4),
    ("current_task", 24, 8),
    ("task_stack", 32, 4),
    ("stack_orig_ax", 36, 4),
    ("event_budget", 40, 4),
    ("slot_size", 44, 4),
    ("nr_rules", 48, 4),
    ("pad0", 52, 4),
    ("rules", 56, 8),
    ("reserved", 64, 32),
)
assert RULE.size == 24 and RULE_FIELDS[-1][1] + RULE_FIELDS[-1][2] == RULE.size
assert RECIPE.size == 96 and RECIPE_FIELDS[-1][1] + RECIPE_FIELDS[-1][2] == RECIPE.size

#: ``_IOW(KVMIO, 0xf5, struct kvm_nitro_recipe)``: dir write (1) << 30 | size << 16 |
#: KVMIO (0xAE) << 8 | 0xf5.
KVM_NITRO_SET_RECIPE = (1 << 30) | (RECIPE.size << 16) | (0xAE << 8) | 0xF5


class Rule(NamedTuple):
    """One ``struct kvm_nitro_capture_rule``: what to copy for call *nr* at *when*."""

    nr: int
    when: int
    arg: int
    kind: int
    size: int
    count_arg: int = 0
    count_shift: int = 0
    offset: int = 0
    max_count: int = 0

    def pack(self) -> bytes:
        """The rule's 24 bytes."""
        return RULE.pack(
            self.nr,
            self.when,
            self.arg,
            self.kind,
            self.count_arg,
            self.count_shift,
            0,
            self.offset,
            self.size,
            self.max_count,
            0,
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> Rule:
        """The rule at *offset* of *data*.

        :raises ValueError: non-zero padding or reserved bytes (the kernel's EINVAL)
        """
        nr, when, arg, kind, carg, shift, pad, off, size, maxc, res = RULE.unpack_from(data, offset)
        if pad or res:
            raise ValueError("non-zero padding in a capture rule")
        return cls(nr, when, arg, kind, size, carg, shift, off, maxc)


@dataclass(frozen=True)
class Recipe:
    """A ``struct kvm_nitro_recipe`` and its rules (sorted by number, then *when*).

    Offsets are in bytes, from the guest kernel's BTF
    (:class:`~libvirt_nitro.linux.layout.KernelLayout`); ``event_budget`` and
    ``slot_size`` in bytes.
    """

    rules: tuple[Rule, ...]
    current_task: int = 0
    task_pid: int = 0
    task_tgid: int = 0
    task_comm: int = 0
    task_comm_len: int = 16
    task_stack: int = 0
    stack_orig_ax: int = STACK_ORIG_AX
    gs_at_entry: int = GS_KERNEL_GS_BASE
    gs_at_exit: int = GS_KERNEL_GS_BASE
    event_budget: int = 4096 - 384
    slot_size: int = 4096
    flags: int = 0

    def pack(self, rules_address: int) -> bytes:
        """The 96 bytes of ``struct kvm_nitro_recipe``, ``rules`` = *rules_address* (where
        :meth:`pack_rules`' bytes sit in the caller's memory)."""
        return RECIPE.pack(
            RECIPE_VERSION,
            RECIPE.size,
            self.flags,
            self.gs_at_entry,
            self.gs_at_exit,
            self.task_comm_len,
            self.task_pid,
            self.task_tgid,
            self.task_comm,
            self.current_task,
            self.task_stack,
            self.stack_orig_ax,
            self.event_budget,
            self.slot_size,
            len(self.rules),
            0,
            rules_address,
            0,
            0,
            0,
            0,
        )

    def pack_rules(self) -> bytes:
        """The rules' array, as ``rules`` points at it."""
        return b"".join(rule.pack() for rule in self.rules)

    def for_call(self, nr: int, when: int) -> tuple[Rule, ...]:
        """The rules of call *nr* at *when*, in order."""
        index = self._index()
        return index.get((nr, when), ())

    def _index(self) -> dict[tuple[int, int], tuple[Rule, ...]]:
        cached = self.__dict__.get("_by_call")
        if cached is None:
            by: dict[tuple[int, int], list[Rule]] = {}
            for rule in self.rules:
                by.setdefault((rule.nr, rule.when), []).append(rule)
            cached = {key: tuple(value) for key, value in by.items()}
            object.__setattr__(self, "_by_call", cached)
        return cached
