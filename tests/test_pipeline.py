"""The event pipeline alone (a pure unit): raw ABI events in, typed records out; pairing,
filtering and decoding the same for every backend; formatters own the text."""

from __future__ import annotations

from typing import Any

from libvirt_nitro.abi.event import (
    EVENT_F_LONG_MODE,
    EVENT_SYSCALL,
    EVENT_SYSENTER,
    EVENT_SYSRET,
    Event,
)
from libvirt_nitro.introspect import Task
from libvirt_nitro.output import JsonFormatter, RawFormatter, StraceFormatter
from libvirt_nitro.pipeline import Filter, Pipeline
from libvirt_nitro.strace import DecodeOptions, parse_trace_expr
from libvirt_nitro.testing.memory import FakeMemory

CR3, RSP = 0x1A2000, 0x7FFD0000
SHELL = Task(pid=40, tid=40, comm="sh")
WORKER = Task(pid=41, tid=42, comm="worker")


def event(
    kind: int, rip: int, rsp: int = RSP, cr3: int = CR3, flags: int = EVENT_F_LONG_MODE, **regs: int
) -> Event:
    def fill(ev: Any) -> None:
        ev.type, ev.vcpu_id, ev.timestamp_ns, ev.flags = kind, 1, 5_000_000_000, flags
        ev.regs.cr3, ev.regs.rsp, ev.regs.rip = cr3, rsp, rip
        for name, value in regs.items():
            setattr(ev.regs, name, value)

    return Event.build(fill)


def enter(nr: int, rip: int = 0x401000, *args: int, **regs: int) -> Event:
    names = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
    return event(EVENT_SYSCALL, rip, rax=nr, **dict(zip(names, args, strict=False)), **regs)


def leave(ret: int, rip: int = 0x401000, **regs: int) -> Event:
    return event(EVENT_SYSRET, 0xFFFFFFFF81000000, rax=ret & (1 << 64) - 1, rcx=rip + 2, **regs)


def test_an_exit_is_paired_with_its_entry_by_thread_across_frames() -> None:
    pipeline = Pipeline()
    memory = FakeMemory({0x5000: b"/etc/passwd\0"})
    first = pipeline.process(enter(257, 0x401000, 0xFFFFFF9C, 0x5000), SHELL, memory)
    assert first is not None and first.name == "openat" and first.task == SHELL
    # The kernel ran the exit elsewhere (another stack pointer): the thread pairs it.
    done = pipeline.process(leave(3, 0x401000, rsp=0x1234), SHELL, memory)
    assert done is not None and (done.nr, done.ret) == (257, 3)
    line = StraceFormatter().lines(done)
    assert line == ['[pid 40 sh] openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 3']


def test_without_tasks_the_frame_pairs_and_unseen_entries_print_as_unknown() -> None:
    pipeline = Pipeline(decode=False)
    assert pipeline.process(enter(39)) is not None
    done = pipeline.process(leave(77))
    assert done is not None and (done.name, done.ret_text) == ("getpid", "77")
    orphan = pipeline.process(leave(5, rip=0x999))
    assert orphan is not None and orphan.nr is None
    assert RawFormatter().lines(orphan)[0].startswith("[vcpu 1] exit  ? = 5 nr=? ")


def test_an_entry_whose_exit_never_came_is_reported_with_the_threads_next_call() -> None:
    pipeline = Pipeline()
    memory = FakeMemory({0x5000: b"/bin/true\0"})
    pipeline.process(enter(59, 0x401000, 0x5000), WORKER, memory)  # execve: no SYSRET
    record = pipeline.process(enter(39, 0x402000), WORKER, memory)
    assert record is not None and record.unfinished is not None
    assert record.unfinished.name == "execve" and record.unfinished.task == WORKER
    lines = StraceFormatter().lines(record)
    assert lines == ['[pid 41 tid 42 worker] execve("/bin/true", NULL, NULL) = 0']


def test_the_filter_drops_entries_and_their_exits_and_applies_to_tasks() -> None:
    pipeline = Pipeline(
        Filter(syscalls=frozenset(parse_trace_expr("%file")), comms=frozenset({"sh"}))
    )
    memory = FakeMemory({0x5000: b"x\0"})
    assert pipeline.process(enter(39), SHELL, memory) is None  # getpid: not %file
    assert pipeline.process(leave(40), SHELL, memory) is None  # ... nor its exit
    assert pipeline.process(enter(87, 0x401000, 0x5000), WORKER, memory) is None  # not sh
    assert pipeline.process(leave(0), WORKER, memory) is None
    kept = pipeline.process(enter(87, 0x401000, 0x5000), SHELL, memory)
    assert kept is not None and kept.name == "unlink"
    assert pipeline.process(leave(0), SHELL, memory) is not None
    # An exit whose entry the kernel's syscall bitmap dropped (never seen): dropped too.
    assert pipeline.process(leave(0, rip=0x777), SHELL, memory) is None


def test_in_place_part_of_a_filter() -> None:
    full = Filter(syscalls=frozenset({1}), pids=frozenset({4}), cr3s=frozenset({CR3}))
    assert full.only(frozenset({"syscalls"})) == Filter(syscalls=frozenset({1}))
    assert full.needs_task and not full.only(frozenset({"syscalls"})).needs_task
    assert Filter().empty and not full.empty


def test_the_string_limit_belongs_to_the_formatter() -> None:
    pipeline = Pipeline(options=DecodeOptions(capture_bytes=64))
    memory = FakeMemory({0x5000: b"0123456789abcdef"})
    pipeline.process(enter(1, 0x401000, 1, 0x5000, 16), SHELL, memory)
    record = pipeline.process(leave(16), SHELL, memory)
    assert record is not None
    assert StraceFormatter(4).lines(record) == ['[pid 40 sh] write(1, "0123"..., 16) = 16']
    assert StraceFormatter(32).lines(record) == [
        '[pid 40 sh] write(1, "0123456789abcdef", 16) = 16'
    ]
    record_json = JsonFormatter(8).as_dict(record)
    assert record_json["args_decoded"] == '1, "01234567"..., 16'
    assert (record_json["name"], record_json["ret"], record_json["pid"]) == ("write", 16, 40)


def test_a_decoder_bug_is_counted_and_the_call_still_printed() -> None:
    class Broken(FakeMemory):
        def read_cstring(self, address: int, limit: int) -> tuple[bytes, bool]:
            raise RuntimeError("a bug, not an unreadable page")

    pipeline = Pipeline()
    pipeline.process(enter(87, 0x401000, 0x5000), SHELL, Broken({}))
    record = pipeline.process(leave(0), SHELL, Broken({}))
    assert record is not None
    assert StraceFormatter().lines(record) == ["[pid 40 sh] unlink(0x5000) = 0"]
    assert pipeline.failures == {"unlink": 1}


OTHER = Task(pid=50, tid=50, comm="later")


def test_an_exited_process_leaves_nothing_for_a_later_one_with_the_same_page_tables() -> None:
    # A process exits (exit_group never returns); a later process gets the same CR3 and
    # makes a call from the same stack and return address: its line is its own.
    pipeline = Pipeline()
    first = pipeline.process(enter(231, 0x401000, 0), SHELL, FakeMemory({}))
    assert first is not None
    assert StraceFormatter().lines(first) == [
        "[pid 40 sh] exit_group(0) = ?",
        "[pid 40 sh] +++ exited with 0 +++",
    ]
    later = pipeline.process(enter(39, 0x401000), OTHER, FakeMemory({}))
    assert later is not None and later.unfinished is None
    assert StraceFormatter().lines(later) == []
    done = pipeline.process(leave(50), OTHER, FakeMemory({}))
    assert StraceFormatter().lines(done) == ["[pid 50 later] getpid() = 50"]


def test_pairing_is_by_task_never_by_frame_across_tasks() -> None:
    pipeline = Pipeline()
    pipeline.process(enter(0, 0x401000, 0, 0x5000, 1), SHELL, FakeMemory({}))  # read, blocks
    # Another task with the same frame (same CR3, stack and return address) enters and
    # leaves: neither its entry nor its exit takes the shell's read.
    pipeline.process(enter(39, 0x401000), OTHER, FakeMemory({}))
    mine = pipeline.process(leave(50), OTHER, FakeMemory({}))
    assert mine is not None and mine.name == "getpid" and mine.task == OTHER
    done = pipeline.process(leave(1), SHELL, FakeMemory({0x5000: b"x"}))
    assert done is not None and done.name == "read"
    assert StraceFormatter().lines(done) == ['[pid 40 sh] read(0, "x", 1) = 1']


def test_a_thread_exit_drops_its_pending_entry() -> None:
    pipeline = Pipeline()
    pipeline.process(enter(0, 0x401000, 0, 0x5000, 1), WORKER, FakeMemory({}))  # no exit seen
    record = pipeline.process(enter(60, 0x402000, 3), WORKER, FakeMemory({}))  # exit(3)
    assert record is not None
    lines = StraceFormatter().lines(record)
    assert lines == [
        "[pid 41 tid 42 worker] read(0,  <unfinished ...>",
        "[pid 41 tid 42 worker] exit(3) = ?",
        "[pid 41 tid 42 worker] +++ exited with 3 +++",
    ]
    # Nothing is left of the thread: a new thread with the same tid starts clean.
    again = pipeline.process(enter(39, 0x401000), WORKER, FakeMemory({}))
    assert again is not None and again.unfinished is None


def test_exit_group_drops_every_thread_of_the_process() -> None:
    pipeline = Pipeline()
    sibling = Task(pid=41, tid=43, comm="worker")
    pipeline.process(enter(0, 0x401000, 0, 0x5000, 1, rsp=0x1000), sibling, FakeMemory({}))
    pipeline.process(enter(231, 0x402000, 1), WORKER, FakeMemory({}))
    # The sibling's read never reappears, even when a thread reuses its tid later.
    reused = pipeline.process(enter(39, 0x401000, rsp=0x1000), sibling, FakeMemory({}))
    assert reused is not None and reused.unfinished is None


def test_a_leftover_line_carries_its_own_task_and_address_space() -> None:
    pipeline = Pipeline()
    pipeline.process(enter(0, 0x401000, 0, 0x5000, 1, cr3=0x9000), None, FakeMemory({}))
    record = pipeline.process(enter(39, 0x401000, cr3=0x9000), None, FakeMemory({}))
    assert record is not None and record.unfinished is not None
    assert record.unfinished.cr3 == 0x9000 and record.unfinished.task is None
    assert StraceFormatter().lines(record) == ["[cr3 0x9000] read(0,  <unfinished ...>"]


def test_a_signal_handler_return_shows_the_signal_and_the_interrupted_return() -> None:
    import struct

    frame = 0x7000
    data = bytearray(8 + 304 + 128)
    struct.pack_into("<Q", data, 8 + 40 + 104, (-4) & (1 << 64) - 1)  # rax: -EINTR
    struct.pack_into("<iii4xiI", data, 8 + 304, 10, 0, 0, 42, 0)  # SIGUSR1 from pid 42
    memory = FakeMemory({frame: bytes(data)})
    pipeline = Pipeline()
    pipeline.process(enter(34, 0x401000), SHELL, memory)  # pause(): returns through IRET
    handler = pipeline.process(enter(15, 0x7F0000, rsp=frame + 8), SHELL, memory)
    assert handler is not None
    assert StraceFormatter().lines(handler) == [
        "[pid 40 sh] pause( <unfinished ...>",
        "[pid 40 sh] --- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=42, si_uid=0} ---",
    ]
    # rt_sigreturn returns through IRET too: its thread's next call says what it returned.
    after = pipeline.process(enter(39, 0x401100), SHELL, memory)
    assert after is not None
    assert StraceFormatter().lines(after) == [
        "[pid 40 sh] rt_sigreturn({mask=[]}) = -1 EINTR (Interrupted system call)"
    ]


def test_interleaved_lines_as_strace_prints_overlapping_calls() -> None:
    pipeline = Pipeline()
    formatter = StraceFormatter(interleave=True)
    memory = FakeMemory({0x5000: b"x"})
    out: list[str] = []
    for rec in (
        pipeline.process(enter(0, 0x401000, 0, 0x5000, 1), SHELL, memory),
        pipeline.process(enter(39, 0x401000, rsp=0x1000), OTHER, memory),
        pipeline.process(leave(50, rsp=0x1000), OTHER, memory),
        pipeline.process(leave(1), SHELL, memory),
        pipeline.process(enter(39, 0x401000), SHELL, memory),
        pipeline.process(leave(40), SHELL, memory),
    ):
        assert rec is not None
        out += formatter.lines(rec)
    out += formatter.flush()
    assert out == [
        "[pid 40 sh] read(0,  <unfinished ...>",
        "[pid 50 later] getpid() = 50",
        '[pid 40 sh] <... read resumed>"x", 1) = 1',
        "[pid 40 sh] getpid() = 40",
    ]


def test_texts_has_the_notes_and_calls_has_only_calls() -> None:
    pipeline = Pipeline()
    record = pipeline.process(enter(231, 0x401000, 2), SHELL, FakeMemory({}))
    assert record is not None
    formatter = StraceFormatter()
    assert formatter.calls(record) == [(SHELL, "exit_group(2) = ?")]
    assert formatter.texts(record) == [
        (SHELL, "exit_group(2) = ?"),
        (SHELL, "+++ exited with 2 +++"),
    ]


# --- 32-bit processes (compatibility mode) ------------------------------------------------


def compat_enter(nr: int, kind: int = EVENT_SYSCALL, **regs: int) -> Event:
    return event(kind, 0xF7F00000, rsp=0xFFD00000, flags=0, rax=nr, **regs)


def test_a_32_bit_process_calls_are_named_from_the_i386_table_and_shown_raw() -> None:
    pipeline = Pipeline()
    # i386 open (5) through the vDSO's SYSCALL: the second argument is in ebp
    opened = pipeline.process(
        compat_enter(5, rbx=0x8049000, rbp=0x241, rdx=0o644, rcx=0xF7F00002), SHELL, FakeMemory()
    )
    assert opened is not None and (opened.nr, opened.name) == (5, "open")
    assert opened.args[:3] == (0x8049000, 0x241, 0o644)
    done = pipeline.process(leave(0x1234_5678_FFFF_FFFE, 0xF7F00000, rsp=0xFFD00000), SHELL)
    assert done is not None and (done.name, done.ret) == ("open", -2)  # eax, signed
    assert StraceFormatter().lines(done) == [
        "[pid 40 sh] open(0x8049000, 0x241, 0x1a4) = -1 ENOENT (No such file or directory)"
    ]
    # getpid is 20 there (39 on x86-64): -e trace=getpid selects it by name
    only = Pipeline(Filter(syscalls=frozenset(parse_trace_expr("getpid"))))
    picked = only.process(compat_enter(20), SHELL)
    assert picked is not None and picked.name == "getpid"
    assert only.process(compat_enter(5), SHELL) is None


def test_sysenter_passes_the_second_argument_in_ecx_and_the_sixth_on_the_stack() -> None:
    pipeline = Pipeline()
    memory = FakeMemory({0xFFD00000: (7).to_bytes(4, "little")})
    # i386 mmap2 (192): addr, len, prot, flags, fd, pgoffset (the pushed ebp)
    mapped = pipeline.process(
        compat_enter(192, EVENT_SYSENTER, rbx=0, rcx=4096, rdx=3, rsi=0x22, rdi=0xFFFFFFFF),
        SHELL,
        memory,
    )
    assert mapped is not None and mapped.name == "mmap2"
    assert mapped.args == (0, 4096, 3, 0x22, 0xFFFFFFFF, 7)
    assert mapped.values == ["0", "0x1000", "0x3", "0x22", "0xffffffff", "0x7"]
    unreadable = pipeline.process(compat_enter(192, EVENT_SYSENTER), WORKER, FakeMemory())
    assert unreadable is not None and unreadable.values[5] == "?"
