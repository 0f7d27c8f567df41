"""The capture recipe derived from the one signature table: what the kernel copies at each
trap so that the decoder finds, in the captured bytes, everything it reads.

:func:`capture_rules` turns each call's :func:`~.signatures.footprints` into
``struct kvm_nitro_capture_rule`` values (:class:`~libvirt_nitro.abi.recipe.Rule`); no
call is described a second time. A footprint is symbolic (a string up to N bytes, N
bytes, a count from argument K or from the return value, a NULL-terminated pointer
array, an iovec array), and so is its rule. Limits follow the decoder's own reads with
:class:`~.decode.DecodeOptions` ``capture_bytes`` (``-s``): strace reads ``-s + 1`` bytes
of a string or buffer and ``-s + 1`` elements of an array.

Calls whose argument kinds depend on an argument (``fcntl``'s command, ``futex``'s op:
a *layout* function) get the union of the footprints of every layout that
:data:`PROBES` reaches, one register varied at a time: rules keyed by register, moment
and shape, the largest size kept. The kernel copies a little more than one command needs;
the decoder reads what its layout says.

Not captured (decoded from the registers, the memory part printed as an address): what
a pointer in guest memory points at, beyond argv and iovecs: ``msghdr``'s iovecs, name
and control data (``sendmsg``, ``recvmsg``, ``sendmmsg``, ``recvmmsg``), ``clone3``'s
``parent_tid``/``pidfd`` after the call; and ioctl arguments. The ``rt_sigreturn`` frame
is captured from ``rsp`` (:data:`SIGRETURN_FRAME`).
"""

from __future__ import annotations

import functools

from ..abi.recipe import ARG, ENTRY, EXIT, FIXED, IOV, REG_RSP, RET, STRING, STRV, Recipe, Rule
from ..linux import SYSCALLS_X86_64
from ..linux import flags as F
from .args import Footprint
from .signatures import SIGNATURES, footprints

__all__ = ["capture_rules", "recipe_for", "PROBES", "SIGRETURN_FRAME", "DEFAULT_CAPTURE"]

#: ``capture_bytes`` the recipe is made for unless told (strace's ``-s`` default).
DEFAULT_CAPTURE = 32

#: Values tried in each register of a call with a layout function: small numbers
#: (commands, ops), their private/flag variants, fcntl's 1024+ and arch_prctl's 0x1000+
#: (and XCOMP 0x1021+) commands, quotactl's ``QCMD(cmd, 0)``, and single bits.
PROBES: tuple[int, ...] = tuple(
    sorted(
        set(range(0, 72))
        | {base | i for base in (0x80, 0x100, 0x180) for i in range(16)}
        | set(range(1024, 1050))
        | {base + i for base in (0x1000, 0x1020, 0x2000, 0x3000, 0x4000) for i in range(8)}
        | {cmd << 8 for _, cmd in F.QUOTA_CMDS}
        | {1 << bit for bit in range(64)}
        | {0x5401, 0x5413, 0x541B, 0x5421}
    )
)

#: ``rt_sigreturn``'s frame: at entry, 440 bytes from ``rsp - 8`` (``struct rt_sigframe``
#: up to the end of its ``siginfo``; :mod:`.decode` reads the mask, ``rax`` and
#: ``siginfo`` there).
SIGRETURN_FRAME = (-8, 8 + 304 + 128)

_WHENS = {"entry": (ENTRY,), "exit": (EXIT,), "both": (ENTRY, EXIT)}


def _rules(nr: int, reg: int, fp: Footprint, capture: int) -> list[Rule]:
    """The rules of one footprint."""
    cap = capture + 1  # strace reads -s + 1 bytes (elements)
    out = []
    for when in _WHENS[fp.when]:
        if fp.shape == "string":
            size = fp.size if not fp.capped else min(fp.size, cap) if fp.size else cap
            out.append(Rule(nr, when, reg, STRING, size))
        elif fp.terminated:
            strings = cap if fp.follows == "string" else 0
            out.append(Rule(nr, when, reg, STRV, strings, max_count=cap if fp.capped else 0))
        elif fp.follows == "bytes" and fp.shape == "array":
            out.append(Rule(nr, when, reg, IOV, cap, count_arg=fp.count_arg or 0, max_count=cap))
        elif fp.count_arg is not None:
            out.append(
                Rule(
                    nr,
                    when,
                    reg,
                    ARG,
                    fp.size,
                    count_arg=fp.count_arg,
                    count_shift=fp.count_shift,
                    max_count=cap if fp.capped else 0,
                )
            )
        elif fp.count_ret:
            if when == EXIT:
                out.append(Rule(nr, when, reg, RET, fp.size, max_count=cap if fp.capped else 0))
        elif fp.capped and fp.count is None:  # a length the registers do not say
            out.append(Rule(nr, when, reg, FIXED, fp.size * cap))
        else:
            out.append(Rule(nr, when, reg, FIXED, fp.size * (fp.count or 1)))
    return out


def _merge(rules: list[Rule]) -> list[Rule]:
    """One rule per (moment, register, shape): the largest size and count kept (a count
    of 0, the budget, is the largest), in first-seen order."""
    merged: dict[tuple, Rule] = {}
    for rule in rules:
        key = (rule.when, rule.arg, rule.kind, rule.count_arg, rule.count_shift, rule.offset)
        old = merged.get(key)
        if old is None:
            merged[key] = rule
            continue
        most = 0 if 0 in (old.max_count, rule.max_count) else max(old.max_count, rule.max_count)
        merged[key] = old._replace(size=max(old.size, rule.size), max_count=most)
    return sorted(merged.values(), key=lambda r: r.when)


def _call_footprints(name: str) -> list[tuple[int, Footprint]]:
    """Every footprint of *name*: its table's, or (a layout function) the union over
    :data:`PROBES`."""
    sig = SIGNATURES[name]
    if isinstance(sig.args, tuple):
        return footprints(name, (0,) * 6)
    seen: dict[tuple[int, Footprint], None] = {}
    for reg in range(6):
        for value in PROBES:
            regs = tuple(value if i == reg else 0 for i in range(6))
            try:
                for item in footprints(name, regs):
                    seen[item] = None
            except Exception:  # noqa: BLE001 - a layout that rejects the probe
                continue
    return list(seen)


@functools.cache
def capture_rules(capture_bytes: int = DEFAULT_CAPTURE) -> tuple[Rule, ...]:
    """The rules of every x86-64 call, sorted by number then moment, for a decoder with
    *capture_bytes* (``-s``)."""
    rules: list[Rule] = []
    for nr in sorted(SYSCALLS_X86_64):
        name = SYSCALLS_X86_64[nr]
        one: list[Rule] = []
        for reg, fp in _call_footprints(name):
            one += _rules(nr, reg, fp, capture_bytes)
        if name == "rt_sigreturn":
            offset, size = SIGRETURN_FRAME
            one.append(Rule(nr, ENTRY, REG_RSP, FIXED, size, offset=offset))
        rules += _merge(one)
    return tuple(rules)


def recipe_for(
    layout: object | None = None,
    *,
    capture_bytes: int = DEFAULT_CAPTURE,
    slot_size: int = 4096,
    event_size: int = 384,
    task_stack: int = 0,
) -> Recipe:
    """The recipe of a guest whose kernel has *layout* (a
    :class:`~libvirt_nitro.linux.layout.KernelLayout`; None: no task capture), for a
    decoder with *capture_bytes*, in ring slots of *slot_size* bytes (the capture budget is
    what the event leaves of the slot). *task_stack* is ``offsetof(struct task_struct,
    stack)`` (0: the exit's call number is not captured)."""
    rules = capture_rules(capture_bytes)
    budget = slot_size - event_size
    if layout is None:
        return Recipe(rules, gs_at_entry=0, gs_at_exit=0, event_budget=budget, slot_size=slot_size)
    return Recipe(
        rules,
        current_task=layout.current_task,  # type: ignore[attr-defined]
        task_pid=layout.task_pid,  # type: ignore[attr-defined]
        task_tgid=layout.task_tgid,  # type: ignore[attr-defined]
        task_comm=layout.task_comm,  # type: ignore[attr-defined]
        task_comm_len=layout.task_comm_len,  # type: ignore[attr-defined]
        task_stack=task_stack,
        event_budget=budget,
        slot_size=slot_size,
    )
