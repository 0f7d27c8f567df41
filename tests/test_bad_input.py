"""Bad input to every verb, as a user would type it: each ends at once with one error line
and a non-zero status, no traceback, no hang, and the guest untouched.

``hook`` is left out on purpose: libvirt runs it and a failing hook would stop the domain,
so it always exits 0 (tests/test_service.py covers it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from libvirt_nitro.runtime import RUN_DIR
from tests.support import wait_for
from tests.test_trace_cli import assert_guest_given_back
from tests.tracing import syscalls_enabled

ROOT = Path(__file__).resolve().parents[1]
URI = "qemu:///system"
DOM = "{dom}"  # the running test guest's name, filled in by the test
NO_SUCH_UUID = "00000000-0000-4000-8000-000000000001"

#: (arguments, what the error line says, expected exit status: 2 for a bad command line).
CASES = [
    (("trace", DOM, "--count", "-3"), "--count: must be a positive integer", 2),
    (("trace", DOM, "--count", "0"), "--count: must be a positive integer", 2),
    (("trace", DOM, "--count", "many"), "--count: must be a positive integer", 2),
    (("trace", DOM, "--duration", "-1"), "--duration: must be a number of seconds > 0", 2),
    (("trace", DOM, "--duration", "0"), "--duration: must be a number of seconds > 0", 2),
    (("trace", DOM, "--duration", "inf"), "--duration: must be a number of seconds > 0", 2),
    (("trace", DOM, "-s", "-5"), "-s: must be an integer >= 0", 2),
    (("trace", DOM, "-p", "0"), "-p: must be a positive integer", 2),
    (("trace", DOM, "-p", "init"), "-p: must be a positive integer", 2),
    (("trace", DOM, "--comm", ""), "--comm: must be a command name of 1 to 15 bytes", 2),
    (("trace", DOM, "--comm", "a-name-of-16-chr"), "--comm: must be a command name", 2),
    (("trace", DOM, "--backend", "xen"), "--backend: invalid choice: 'xen'", 2),
    (("trace", DOM, "-e", "trace=nosuchcall"), "invalid system call 'nosuchcall'", 1),
    (("trace", DOM, "-e", "signal=all"), "only trace=", 1),
    (("trace", DOM, "-o", "/nonexistent-dir/x"), "-o /nonexistent-dir/x: No such file", 1),
    (("trace", DOM, "--kernel-image", "/nonexistent"), "--kernel-image /nonexistent", 1),
    (("trace", DOM, "--kernel-image", "/etc/hostname"), "kernel image /etc/hostname", 1),
    (("trace", DOM, "--backend", "kernel"), "the kernel backend needs the Nitro KVM", 1),
    (("trace", DOM, "--backend", "gdbstub", "--sync"), "needs the kernel backend", 1),
    (("trace", "no-such-domain"), "no domain with a name, UUID or id of 'no-such-domain'", 1),
    (("trace",), "the following arguments are required: DOMAIN", 2),
    (("-c", "bogus:///x", "trace", DOM), "cannot connect to bogus:///x", 1),
    (("inspect", "no-such-domain"), "no domain with a name", 1),
    (("inspect", DOM, "--fds"), "", 1),
    (("list", "--bogus"), "unrecognized arguments: --bogus", 2),
    (("config", "no-such-domain"), "no domain with a name", 1),
    (("config", DOM, "--set", "/nonexistent.xml"), "/nonexistent.xml: No such file", 1),
    (("config", DOM, "--set", "{malformed}"), "not well-formed", 1),
    (("config", DOM, "--set", "{invalid}"), "nitro.rng", 1),
    (("config", DOM, "--live", "--config"), "one definition at a time", 1),
    (("config", DOM, "--set", "x", "--remove"), "not allowed with argument", 2),
    (("install-hook", "--hooks-dir", "/proc/nonexistent/hooks"), "No such file", 1),
    (("serve", "not-a-uuid"), "UUID: must be a domain UUID", 2),
    (("status", "--bogus"), "unrecognized arguments: --bogus", 2),
    (("watch", "--hook-pid", "x"), "--hook-pid: invalid int value", 2),
    (("bogus-verb",), "invalid choice: 'bogus-verb'", 2),
]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``libvirt-nitro -c qemu:///system ARGS``; a hang fails the test (TimeoutExpired)."""
    command = [sys.executable, "-m", "libvirt_nitro"]
    if args[:1] != ("-c",):
        command += ["-c", URI]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )


@pytest.mark.parametrize(("args", "says", "status"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_error_line(tcg_guest, tmp_path, args, says, status) -> None:
    malformed = tmp_path / "malformed.xml"
    malformed.write_text("<nitro:trace")
    invalid = tmp_path / "invalid.xml"
    invalid.write_text('<trace xmlns="http://libvirt-nitro.org/xmlns/trace/1.0" mode="fast"/>')
    words = [word.format(dom=tcg_guest.name, malformed=malformed, invalid=invalid) for word in args]
    done = run_cli(*words)
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("libvirt-nitro: error: "), done.stderr
    assert says in lines[0]
    assert not done.stdout


def test_serve_of_an_unknown_domain_is_one_error(tcg_guest) -> None:
    """The service logs in journal form (``<3>`` is an error) and exits 1."""
    done = run_cli("serve", NO_SUCH_UUID, "--attach-timeout", "1")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("<3>")]
    assert len(errors) == 1 and "the domain is gone" in errors[0], done.stderr


def test_the_guest_was_never_touched(tcg_guest) -> None:
    """After every bad input above: SYSCALL enabled, no stub, no lock, a trace attaches."""
    assert syscalls_enabled(tcg_guest.dom)
    wait_for(lambda: not (RUN_DIR / "gdb" / tcg_guest.dom.UUIDString()).exists(), "no stub")
    assert_guest_given_back(tcg_guest)
