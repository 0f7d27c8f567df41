"""Tracing the real test guest through QEMU's gdbstub: events, completions, detach."""

from __future__ import annotations

import errno
import signal

import pytest

from libvirt_nitro import attach
from libvirt_nitro.errors import AlreadyTraced
from libvirt_nitro.linux import syscall_number
from tests.tracing import of_process, run_traced, syscalls_enabled, trap_during

GETPID, OPENAT, WRITE, CLOSE = (syscall_number(n) for n in ("getpid", "openat", "write", "close"))
MARKER = b"/nitro-marker\0"


def test_sequence_is_traced_with_numbers_arguments_and_returns(libvirt_loop, tcg_guest):
    tracer = attach(tcg_guest.dom)
    try:
        records, result = run_traced(libvirt_loop, tracer, lambda: tcg_guest.run("sequence"))
    finally:
        tracer.close()
    assert result.exit_code == 0, result.output
    values = result.values
    pid = int(values["pid"])
    # The workload's process: the address space that called getpid and got its pid back.
    cr3 = next(
        r["cr3"]
        for r in records
        if r["direction"] == "exit" and r["nr"] == GETPID and r["ret"] == pid
    )
    mine = of_process(records, cr3)
    entries = [r for r in mine if r["direction"] == "enter"]
    exits = {(r["nr"], r["ret"]) for r in mine if r["direction"] == "exit"}
    assert sum(1 for r in entries if r["nr"] == GETPID) >= 4  # "pid=" + getpid x3
    assert (GETPID, pid) in exits
    opens = [r for r in entries if r["nr"] == OPENAT]
    assert len(opens) == 2 and opens[0]["args"][0] == 0xFFFFFF9C  # AT_FDCWD, as the u32 libc passes
    assert (OPENAT, int(values["openat"])) in exits
    writes = [r for r in entries if r["nr"] == WRITE and r["args"][2] == int(values["write"])]
    assert writes and (WRITE, int(values["write"])) in exits
    assert (1023, -errno.ENOSYS) in exits
    assert any(r["name"] == "syscall_0x3ff" and r["args"][:3] == [1, 2, 3] for r in entries)
    # The genuine #UD of the ud2 child went to the guest's handler: SIGILL, as untraced.
    assert values["ud2_child_signal"] == str(int(signal.SIGILL))
    assert values["fork_child_exit"] == "7"
    for record in mine:
        assert record["vcpu"] in (0, 1) and record["rip"] > 0


def test_detach_gives_the_guest_back(libvirt_loop, tcg_guest):
    tracer = attach(tcg_guest.dom)
    assert not syscalls_enabled(tcg_guest.dom)  # armed: SCE cleared on every vCPU
    tracer.close()
    assert syscalls_enabled(tcg_guest.dom)
    result = tcg_guest.run("sequence")
    assert result.exit_code == 0 and result.values["ud2_child_signal"] == "4"
    # No breakpoint, no stub left: a new tracer can start at once.
    attach(tcg_guest.dom).close()


def test_each_vcpu_reports_its_own_events(libvirt_loop, tcg_guest):
    tracer = attach(tcg_guest.dom)
    try:

        def pinned() -> list:
            return [
                tcg_guest.run("/bin/busybox", "taskset", mask, "/bin/workload", "getpid", "5")
                for mask in ("1", "2")
            ]

        records, results = run_traced(libvirt_loop, tracer, pinned)
    finally:
        tracer.close()
    for vcpu, result in enumerate(results):
        pid = int(result.values["getpid"])
        ours = [
            r for r in records if r["direction"] == "exit" and r["nr"] == GETPID and r["ret"] == pid
        ]
        assert len(ours) == 5
        assert {r["vcpu"] for r in ours} == {vcpu}


def test_a_second_tracer_is_refused(tcg_guest):
    tracer = attach(tcg_guest.dom)
    try:
        with pytest.raises(AlreadyTraced, match="already being traced"):
            attach(tcg_guest.dom)
    finally:
        tracer.close()
    assert syscalls_enabled(tcg_guest.dom)


def test_marker_pointer_dereferences_at_the_trap(tcg_guest):
    """At an openat entry, with the vCPU stopped in the caller's address space, its path
    pointer reads as the marker string from guest memory."""
    strings: list[bytes] = []

    def on_trap(target, event) -> None:
        if event.kind == "syscall" and event.regs["rax"] == OPENAT:
            strings.append(target.read_memory(event.vcpu, event.regs["rsi"], len(MARKER)))

    result = trap_during(tcg_guest, on_trap, "open", "/nitro-marker")
    assert result.exit_code == 0
    assert MARKER in strings
    assert syscalls_enabled(tcg_guest.dom)
