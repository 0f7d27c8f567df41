"""Fidelity: libvirt-nitro, from outside, against Debian's strace inside the guest.

The workload runs under ``strace -f`` in the guest while libvirt-nitro traces the whole
domain. Per guest process, both must show the same system calls in the same order, with the
same decoded arguments and return values. The differences that remain are listed in
:data:`KNOWN_DIFFERENCES`, each with its reason.
"""

from __future__ import annotations

import re

from libvirt_nitro import attach
from tests.tracing import run_traced_events

STRACE_OUT = "/tmp/nitro-fidelity.strace"

#: name -> why libvirt-nitro's line may differ from strace's (the call must still appear, at
#: the same place, with the same return value).
KNOWN_DIFFERENCES = {
    "ioctl": "terminal ioctls: strace decodes struct termios, libvirt-nitro prints the pointer",
}

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_UNFINISHED = re.compile(r"^(.*?) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\)\s+= (.*)$")
_CALL_NO_RETURN = re.compile(r"^(\w+)\((.*)\)\s+= \?$")


def parse_strace(text: str) -> dict[int, list[tuple[str, str, str]]]:
    """``strace -f -o`` output -> {pid: [(name, args, ret), ...]}, unfinished/resumed pairs
    joined, signal and exit notes (``---``, ``+++``) left out."""
    calls: dict[int, list[tuple[str, str, str]]] = {}
    pending: dict[int, str] = {}
    for raw in text.splitlines():
        match = _LINE.match(raw)
        if not match:
            continue
        pid, body = int(match.group(1)), match.group(2)
        if body.startswith(("---", "+++")):
            continue
        unfinished = _UNFINISHED.match(body)
        if unfinished:
            pending[pid] = unfinished.group(1)
            continue
        resumed = _RESUMED.match(body)
        if resumed:
            body = pending.pop(pid) + resumed.group(2)
        call = _CALL.match(body)
        assert call, f"unparsed strace line: {raw!r}"
        calls.setdefault(pid, []).append((call.group(1), call.group(2), call.group(3).strip()))
    return calls


def nitro_calls(lines: list[tuple[int, str]]) -> dict[int, list[tuple[str, str, str]]]:
    """libvirt-nitro's strace lines (pid, 'name(args) = ret') in the same form."""
    calls: dict[int, list[tuple[str, str, str]]] = {}
    for pid, line in lines:
        call = _CALL.match(line)
        assert call, f"unparsed libvirt-nitro line: {line!r}"
        calls.setdefault(pid, []).append((call.group(1), call.group(2), call.group(3).strip()))
    return calls


# strace makes a dozen system calls (ptrace, wait4, process_vm_readv...) for each one of its
# tracee, and every one of them is trapped here: the run takes minutes under TCG.
def test_same_calls_as_strace_in_the_guest(libvirt_loop, tcg_guest) -> None:
    tracer = attach(tcg_guest.dom)
    try:
        events, result = run_traced_events(
            libvirt_loop,
            tracer,
            lambda: tcg_guest.run(
                "/usr/bin/strace", "-f", "-o", STRACE_OUT, "/bin/workload", "sequence", timeout=900
            ),
        )
    finally:
        tracer.close()
    assert result.exit_code == 0, result.output
    inside = parse_strace("\n".join(tcg_guest.run("/bin/busybox", "cat", STRACE_OUT).output))
    workload_pids = sorted(inside)
    assert len(workload_pids) == 3  # the workload and its fork and ud2 children

    from libvirt_nitro.output import StraceFormatter

    formatter = StraceFormatter()
    ours: list[tuple[int, str]] = []
    for event in events:
        assert event.record is not None
        for task, text in formatter.calls(event.record):
            if task is not None and task.pid in workload_pids:
                ours.append((task.tid, text))
    outside = nitro_calls(ours)
    differences = []
    for pid in workload_pids:
        expected, got = inside[pid], outside.get(pid, [])
        if expected[0][0] == "execve":
            # What strace's child did before its execve is strace's own work, not shown.
            got = got[[call[0] for call in got].index("execve") :]
        assert [c[0] for c in got] == [c[0] for c in expected], (pid, got, expected)
        for (name, args, ret), (_, our_args, our_ret) in zip(expected, got, strict=True):
            if our_ret != ret or (name not in KNOWN_DIFFERENCES and our_args != args):
                differences.append(f"{pid} {name}({our_args}) = {our_ret}  vs  ({args}) = {ret}")
    assert not differences, "\n".join(differences)
