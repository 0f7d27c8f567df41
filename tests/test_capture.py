"""Trap-time capture: the recipe derived from the signature table, the reference capture
(what the kernel writes), its parser, and the one decoder reading the captures.

The rule every test checks: decoding a call from the bytes the recipe captured gives the
same strace line as decoding it from the guest memory itself.
"""

from __future__ import annotations

import struct
from collections import Counter

import pytest

from libvirt_nitro.abi.capture import (
    F_BUDGET,
    F_TRUNCATED,
    F_UNREADABLE,
    H_BUDGET,
    H_TASK,
    CapturedMemory,
    capture,
    from_event,
    parse,
)
from libvirt_nitro.abi.event import EVENT_F_LONG_MODE, EVENT_SYSCALL, EVENT_SYSRET, Event
from libvirt_nitro.abi.recipe import ENTRY, EVENT_F_CAPTURE, EXIT, FIXED, STRING, Recipe, Rule
from libvirt_nitro.abi.ring import Ring
from libvirt_nitro.errors import NitroError
from libvirt_nitro.introspect import Task
from libvirt_nitro.linux import syscall_number
from libvirt_nitro.output import StraceFormatter
from libvirt_nitro.pipeline import Pipeline
from libvirt_nitro.strace import DecodeOptions, decode_entry, decode_exit, format_line, render_args
from libvirt_nitro.strace.recipe import capture_rules, recipe_for
from libvirt_nitro.testing.memory import FakeMemory
from tests import test_strace_decode

U64 = (1 << 64) - 1
RSP = 0x7FFD_0000
BIG = 1 << 20


def u64(value: int) -> int:
    return value & U64


def _through(recipe: Recipe, when: int, nr: int, regs: list[int], ret: int, memory):
    if memory is None:
        return None
    area = capture(recipe, when, nr, regs + [RSP], ret, memory)
    return CapturedMemory(parse(area, 0).records)


def both_lines(name, args, ret, entry=None, exit=None, string_limit=32, captured=None, sp=RSP):
    """(line decoded from memory, line decoded from captures) of one call, as
    test_strace_decode's ``trace``."""
    capture_bytes = string_limit if captured is None else captured
    nr = name if isinstance(name, int) else syscall_number(name)
    regs = [u64(a) for a in args] + [0] * (6 - len(args))
    entry_fake = FakeMemory(entry) if entry is not None else None
    exit_fake = FakeMemory(exit) if exit is not None else entry_fake
    recipe = Recipe(capture_rules(capture_bytes), event_budget=BIG, slot_size=BIG + 384)
    lines = []
    for entry_mem, exit_mem in (
        (entry_fake, exit_fake),
        (
            _through(recipe, ENTRY, nr, regs, 0, entry_fake),
            _through(recipe, EXIT, nr, regs, u64(ret), exit_fake),
        ),
    ):
        options = DecodeOptions(capture_bytes=capture_bytes)
        call = decode_entry(nr, regs, entry_mem, options, sp)
        values, ret_text = decode_exit(call, u64(ret), exit_mem, options)
        lines.append(format_line(call.name, render_args(values, string_limit), ret_text))
    return tuple(lines)


def stat_buf(mode: int, size: int = 0) -> bytes:
    data = bytearray(144)
    struct.pack_into("<I", data, 24, mode)
    struct.pack_into("<q", data, 48, size)
    return bytes(data)


AT_FDCWD = u64(-100)
PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
ARGV = {
    0x1000: b"/bin/ls\0",
    0x9000: struct.pack("<4Q", 0x9100, 0x9200, 0x9300, 0),
    0x9100: b"ls\0",
    0x9200: b"-l\0",
    0x9300: b"a\nb\0",
    0xA000: struct.pack("<3Q", 0x9100, 0x9200, 0),
}
SIGACT = struct.pack("<QQQQ", 0x401000, 0x04000000, 0x401100, 1 << 9)
DIRENTS = b"".join(
    struct.pack("<QqHB", i, i + 1, 24, 4) + name.ljust(5, b"\0")
    for i, name in enumerate([b".", b"..", b"f"])
)

#: (name, args, ret, entry memory, exit memory)
CASES = [
    ("openat", [AT_FDCWD, 0x1000, 0o2000000], 3, {0x1000: b"/etc/passwd\0"}, None),
    ("openat", [AT_FDCWD, 0x1000, 0o101, 0o644], u64(-13), {0x1000: b"/tmp/x\0"}, None),
    ("read", [3, 0x2000, 4096], len(PASSWD), {}, {0x2000: PASSWD}),
    ("read", [3, 0x2000, 4096], u64(-11), {}, {}),
    ("write", [1, 0x2000, len(PASSWD)], len(PASSWD), {0x2000: PASSWD}, None),
    ("write", [1, 0x2000, 5], 5, {0x2000: b"hi\n\0\x01"}, None),
    (
        "newfstatat",
        [AT_FDCWD, 0x1000, 0x3000, 0],
        0,
        {0x1000: b"/etc\0"},
        {0x1000: b"/etc\0", 0x3000: stat_buf(0o40755, 4096)},
    ),
    ("stat", [0x1000, 0x3000], 0, {0x1000: b"/bin/sh\0"}, {0x3000: stat_buf(0o100755, 125688)}),
    ("fstat", [3, 0x3000], 0, {}, {0x3000: stat_buf(0o20620)}),
    ("execve", [0x1000, 0x9000, 0xA000], 0, ARGV, None),
    ("execve", [0x1000, 0x9000, 0], u64(-2), ARGV, None),
    ("rt_sigaction", [2, 0x4000, 0x5000, 8], 0, {0x4000: SIGACT}, {0x5000: bytes(32)}),
    ("rt_sigaction", [15, 0, 0x5000, 8], 0, {}, {0x5000: SIGACT}),
    (
        "select",
        [5, 0x6000, 0x6100, 0, 0x6200],
        1,
        {
            0x6000: struct.pack("<Q", 0b11000),
            0x6100: struct.pack("<Q", 0b10),
            0x6200: struct.pack("<qq", 1, 500),
        },
        {
            0x6000: struct.pack("<Q", 0b10000),
            0x6100: struct.pack("<Q", 0),
            0x6200: struct.pack("<qq", 0, 250),
        },
    ),
    (
        "wait4",
        [u64(-1), 0x7000, 0, 0x7100],
        4242,
        {},
        {0x7000: struct.pack("<i", 7 << 8), 0x7100: bytes(144)},
    ),
    ("getdents64", [3, 0x8000, 32768], len(DIRENTS), {}, {0x8000: DIRENTS}),
    (
        "poll",
        [0xB000, 2, 1000],
        1,
        {0xB000: struct.pack("<ihhihh", 3, 1, 0, 4, 4, 0)},
        {0xB000: struct.pack("<ihhihh", 3, 1, 1, 4, 4, 0)},
    ),
    ("clock_gettime", [1, 0xC000], 0, {}, {0xC000: struct.pack("<qq", 12, 345678)}),
    (
        "writev",
        [1, 0xD000, 2],
        5,
        {0xD000: struct.pack("<4Q", 0xD100, 2, 0xD200, 3), 0xD100: b"ab", 0xD200: b"cde"},
        None,
    ),
    (
        "readv",
        [0, 0xD000, 2],
        4,
        {0xD000: struct.pack("<4Q", 0xD100, 2, 0xD200, 3)},
        {0xD000: struct.pack("<4Q", 0xD100, 2, 0xD200, 3), 0xD100: b"ab", 0xD200: b"cde"},
    ),
    ("fcntl", [3, 6, 0xE000], 0, {0xE000: struct.pack("<hhqqi4x", 1, 0, 0, 0, 0)}, None),
    ("prctl", [15, 0xF000], 0, {0xF000: b"worker\0"}, None),
    ("pipe2", [0xF100, 0o2000000], 0, {}, {0xF100: struct.pack("<ii", 3, 4)}),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_same_line_from_captures(case):
    name, args, ret, entry, exit = case
    direct, captured = both_lines(name, args, ret, entry, exit)
    assert captured == direct


def test_same_lines_for_every_decoder_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call of tests/test_strace_decode.py (strace 6.1's own lines) decoded again from
    captures: the same line, except for the calls listed as not captured."""
    differ: Counter[str] = Counter()
    seen: Counter[str] = Counter()

    def trace(name, args, ret, entry=None, exit=None, string_limit=32, captured=None):
        direct, from_captures = both_lines(
            name, args, ret, entry, exit, string_limit, captured, sp=None
        )
        call = direct.split("(", 1)[0]
        seen[call] += 1
        if from_captures != direct:
            differ[call] += 1
        return direct

    monkeypatch.setattr(test_strace_decode, "trace", trace)
    for test_name in dir(test_strace_decode):
        test = getattr(test_strace_decode, test_name)
        if test_name.startswith("test_") and callable(test):
            try:
                test()
            except TypeError:  # a parametrized test: run by its own module
                continue
    assert sum(seen.values()) > 300
    assert set(differ) <= NOT_CAPTURED, dict(differ)


#: Calls whose lines need memory the recipe does not capture (see strace/recipe.py).
NOT_CAPTURED = frozenset({"sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "clone3", "ioctl"})


def test_unreadable_page_is_the_same_unreadable_path():
    # A string that runs into an unreadable byte; a buffer whose tail is unreadable.
    mem = {0x1000: b"/no/nul/here"}
    direct, captured = both_lines("openat", [AT_FDCWD, 0x1000, 0], u64(-2), mem)
    assert captured == direct and "0x1000" in direct
    area = capture(
        Recipe(capture_rules()), ENTRY, 257, [AT_FDCWD, 0x1000, 0, 0, 0, 0, RSP], 0, FakeMemory(mem)
    )
    (record,) = parse(area, 0).records
    assert record.flags == F_UNREADABLE and record.data == b"/no/nul/here"
    direct, captured = both_lines("write", [1, 0x2000, 64], 64, {0x2000: b"x" * 10})
    assert captured == direct


def test_string_cut_at_its_limit_is_flagged_truncated():
    rules = (Rule(257, ENTRY, 1, STRING, 8),)
    area = capture(
        Recipe(rules),
        ENTRY,
        257,
        [0, 0x1000, 0, 0, 0, 0, 0],
        0,
        FakeMemory({0x1000: b"0123456789\0"}),
    )
    (record,) = parse(area, 0).records
    assert (record.data, record.flags) == (b"01234567", F_TRUNCATED)
    memory = CapturedMemory([record])
    assert memory.read_cstring(0x1000, 8) == (b"01234567", True)
    with pytest.raises(NitroError):
        memory.read_cstring(0x1000, 9)


def test_budget_cuts_records_and_says_so():
    rules = (Rule(1, ENTRY, 1, FIXED, 100), Rule(1, ENTRY, 2, FIXED, 100))
    regs = [1, 0x1000, 0x2000, 0, 0, 0, 0]
    memory = FakeMemory({0x1000: bytes(range(100)), 0x2000: bytes(100)})
    area = capture(Recipe(rules, event_budget=48 + 16 + 64), ENTRY, 1, regs, 0, memory)
    assert len(area) <= 48 + 16 + 64
    captures = parse(area, 0)
    assert captures.flags & H_BUDGET
    (record,) = captures.records
    assert record.flags == F_BUDGET and record.data == bytes(range(64))
    assert len(area) % 8 == 0


def _slot(kind: int, nr_or_ret: int, args, rip: int, area: bytes) -> bytes:
    def fill(ev) -> None:
        ev.type, ev.vcpu_id, ev.timestamp_ns = kind, 0, 1
        ev.flags = EVENT_F_CAPTURE | EVENT_F_LONG_MODE  # a 64-bit process's
        regs = ev.regs
        regs.cr3, regs.rsp, regs.rax = 0x1000, RSP, nr_or_ret & U64
        regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = args
        if kind == EVENT_SYSCALL:
            regs.rip = rip
        else:
            regs.rip, regs.rcx = 0xFFFFFFFF81000000, rip + 2

    return Event.build(fill).raw + area


def test_pipeline_decodes_a_ring_of_captured_events():
    """Events with captures through the ring and the pipeline: the task comes from the
    capture header, the memory from the records, and the lines are the live ones."""
    recipe = recipe_for(None)
    ring = Ring(16, slot_size=recipe.slot_size)
    task = (412, 412, b"nginx")
    calls = [case for case in CASES if case[0] in ("openat", "read", "newfstatat", "execve")]
    expected = []
    for i, (name, args, ret, entry, exit) in enumerate(calls):
        nr = syscall_number(name)
        regs = [u64(a) for a in args] + [0] * (6 - len(args))
        entry_mem = FakeMemory(entry)
        exit_mem = FakeMemory(exit) if exit is not None else entry_mem
        for kind, value, when, memory, rax in (
            (EVENT_SYSCALL, nr, ENTRY, entry_mem, 0),
            (EVENT_SYSRET, ret, EXIT, exit_mem, u64(ret)),
        ):
            area = capture(recipe, when, nr, regs + [RSP], rax, memory, task)
            assert ring.push(_slot(kind, value, regs, 0x401000 + 16 * i, area))
        expected.append(f"[pid 412 nginx] {both_lines(name, args, ret, entry, exit)[0]}")
    slots, lost = ring.drain()
    assert lost == 0
    pipeline, formatter, lines = Pipeline(), StraceFormatter(), []
    for raw in slots:
        event = Event(raw)
        got = from_event(event)
        assert got is not None
        who, memory = got
        assert who == Task(412, 412, "nginx")
        lines += formatter.lines(pipeline.process(event, who, memory))
    assert lines == expected
    header = parse(slots[0], Event(slots[0]).size)
    assert header.flags & H_TASK and header.nr == 257


def test_recipe_comes_from_the_table():
    rules = capture_rules()
    by = {}
    for rule in rules:
        by.setdefault(rule.nr, []).append(rule)
    assert [r.nr for r in rules] == sorted(r.nr for r in rules)
    openat = syscall_number("openat")
    assert by[openat] == [Rule(openat, ENTRY, 1, STRING, 4096)]
    read = syscall_number("read")
    ((rule),) = by[read]
    assert (rule.when, rule.arg, rule.max_count) == (EXIT, 1, 33)
    assert syscall_number("getpid") not in by


def test_sigreturn_frame_is_captured_from_rsp():
    frame = bytearray(440)
    struct.pack_into("<Q", frame, 8 + 40 + 104, 7)  # the interrupted context's rax
    struct.pack_into("<Q", frame, 8 + 296, 1 << 9)  # uc_sigmask: SIGUSR1
    struct.pack_into("<iii", frame, 8 + 304, 10, 0, 0)  # siginfo: SIGUSR1
    mem = {RSP - 8: bytes(frame)}
    direct, captured = both_lines("rt_sigreturn", [], 0, mem)
    assert captured == direct and direct.startswith("rt_sigreturn({mask=[USR1]})")


def test_capture_area_bytes():
    """The format, byte for byte (what the kernel must write): openat's path at entry, by
    task 412 "nginx", with the default recipe."""
    recipe = recipe_for(None)
    regs = [AT_FDCWD, 0x1000, 0, 0, 0, 0, RSP]
    area = capture(
        recipe, ENTRY, 257, regs, 0, FakeMemory({0x1000: b"/etc/passwd\0"}), (413, 412, b"nginx")
    )
    header = struct.pack("<HHIIIii16sHHI", 1, 48, H_TASK, 1, 32, 413, 412, b"nginx", 257, 0, 0)
    record = struct.pack("<QIBBH", 0x1000, 12, 1, STRING, 0) + b"/etc/passwd\0" + bytes(4)
    assert area == header + record


def test_recipe_struct_and_rules_pack():
    recipe = recipe_for(None)
    packed = recipe.pack(0x7F00_0000_1000)
    assert len(packed) == 96
    version, size, _, gs_in, gs_out = struct.unpack_from("<HHIBB", packed)
    assert (version, size, gs_in, gs_out) == (1, 96, 0, 0)
    rules = recipe.pack_rules()
    assert len(rules) == 24 * len(recipe.rules)
    assert Rule.unpack(rules, 24 * 5) == recipe.rules[5]
    with pytest.raises(ValueError):
        Rule.unpack(rules[:7] + b"\1" + rules[8:24])
