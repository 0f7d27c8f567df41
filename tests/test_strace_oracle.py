"""strace's own test suite as the conformance oracle of libvirt-nitro's output.

strace's test programs (built statically from the strace source of the guest's version,
``tests/oracle/build.py``) run in a TCG test guest while libvirt-nitro traces them from
outside as ``trace --comm NAME -e trace=SET -s N`` would; each program prints the exact lines
strace must print for it, and libvirt-nitro's lines for the program's process must be the
same (``tests/oracle/compare.py`` says what is normalised: column alignment, the final exit
note). The tests run are the ``included`` list of ``tests/oracle/tests.toml``; at the end
the pass counts per class and every left-out test with its reason are printed.

The first half of this module tests the pure parts (option parsing, classes, comparison)
without a guest. ``tests/oracle/README.md`` has the whole story.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.oracle.catalog import (
    TESTS_TOML,
    Catalogue,
    Spec,
    Unsupported,
    _option_reason,
    catalogue,
    load_toml,
    parse_options,
)
from tests.oracle.classes import CLASS_OF, LOCAL, NOT_LOCAL, class_of_test
from tests.oracle.compare import compare, exit_status_of_note, filter_ours, normalise
from tests.support import require

INCLUDED: list[str] = load_toml()["included"]


# --- the pure parts -------------------------------------------------------------------------


def test_alignment_is_normalised_on_both_sides() -> None:
    assert normalise("getpid()                                = 42") == "getpid() = 42"
    assert normalise("umask(000) = 022") == "umask(000) = 022"
    # the return separator is the last ") <spaces>= ", not one inside a string argument
    assert normalise('write(1, "a) = b", 6)     = 6') == 'write(1, "a) = b", 6) = 6'
    assert normalise("--- SIGCHLD {si_signo=SIGCHLD} ---") == "--- SIGCHLD {si_signo=SIGCHLD} ---"
    assert normalise("exit_group(0)                           = ?") == "exit_group(0) = ?"


def test_exit_notes() -> None:
    assert exit_status_of_note("+++ exited with 0 +++") == 0
    assert exit_status_of_note("+++ exited with 3 +++") == 3
    assert exit_status_of_note("+++ killed by SIGSEGV +++") == 128 + 11
    assert exit_status_of_note("+++ killed by SIGABRT (core dumped) +++") == 128 + 6
    assert exit_status_of_note("getpid() = 1") is None


def test_harness_filters() -> None:
    lines = ["a(1) = 0", "marker(2) = -1 EINVAL", "b(3) = 0", "a(4) = 0"]
    assert filter_ours(lines, start_from=r"marker\(") == lines[1:]
    assert filter_ours(lines, start_from=r"absent") == []
    assert filter_ours(lines, drop_through=r"^marker\(2\) += -1 ") == lines[2:]
    assert filter_ours(lines, drop_through=r"absent") == []
    assert filter_ours(lines, drop_matching=r"^a\(") == lines[1:3]
    assert filter_ours(["x", "x", "y", "x"], uniq=True) == ["x", "y", "x"]


def test_compare() -> None:
    expected = "getpid()   = 12\n+++ exited with 0 +++\n"
    assert compare(expected, ["getpid() = 12"], 0).passed
    assert compare(expected, ["getpid() = 12", "+++ exited with 0 +++"], 0).passed
    failed = compare(expected, ["getpid() = 13"], 0)
    assert failed.status == "fail"
    assert "line 1" in failed.reason and "-getpid() = 12" in failed.diff
    assert compare(expected, [], 0).reason == "line 1: expected 'getpid() = 12', got nothing"
    assert "status 1" in compare(expected, ["getpid() = 12"], 1).reason
    killed = "--- SIGSEGV {si_signo=SIGSEGV} ---\n+++ killed by SIGSEGV +++\n"
    assert compare(killed, ["--- SIGSEGV {si_signo=SIGSEGV} ---"], 139).passed
    skipped = compare("", [], 77, stderr="xx: skipped test: no foo\n")
    assert skipped.status == "skip" and "no foo" in skipped.reason


def test_options() -> None:
    spec = parse_options("dup", ["-a7", "9>>/dev/full"])
    assert (spec.trace, spec.string_limit, spec.redirections) == ("dup", 32, ("9>>/dev/full",))
    spec = parse_options(
        "getrandom", ["-a22", "-s3", "QUIRK:START-OF-TEST-OUTPUT:getrandom(NULL, 0, 0)"]
    )
    assert spec.string_limit == 3 and spec.start_from == r"getrandom\(NULL,\ 0,\ 0\)"
    spec = parse_options("kill", ["-a12", "-esignal=none", "-e", "trace=kill,tgkill"])
    assert spec.trace == "kill,tgkill"
    spec = parse_options("x", ["--trace=openat", "-qq", "-Xabbrev", "7>", "/dev/null"])
    assert spec.trace == "openat" and spec.redirections == ("7>/dev/null",)
    assert parse_options("x", ["QUIRK:PROG-ARGS:256 42"]).args == ("256", "42")
    for words in (["-y"], ["-v"], ["-P", "/dev/full"], ["-einject=bpf:retval=42"], ["-f"]):
        with pytest.raises(Unsupported):
            parse_options("x", words)
    assert "no -y" in _option_reason("-y")
    assert "tampering" in _option_reason("-e inject=bpf:retval=42")


def test_every_call_has_one_class() -> None:
    from libvirt_nitro.linux.syscalls_x86_64 import SYSCALLS

    groups = [*LOCAL.values(), *(names for names, _ in NOT_LOCAL.values())]
    assert sum(len(names) for names in groups) == len(CLASS_OF)  # no call in two groups
    assert set(SYSCALLS.values()) <= set(CLASS_OF)
    assert class_of_test("chdir") == "files"
    assert class_of_test("?osf_utimes,utimes") is None
    assert class_of_test("socket") == "network"


def test_tests_toml_is_well_formed() -> None:
    toml = load_toml(TESTS_TOML)
    assert len(set(INCLUDED)) == len(INCLUDED), "a test is included twice"
    assert not set(INCLUDED) & set(toml["left_out"]), "included and left out"
    assert not set(INCLUDED) & set(toml["not_in_ci"]), "included and kept out of CI"
    assert INCLUDED == sorted(INCLUDED), "keep included sorted (one line per test)"
    assert set(toml["class"].values()) <= set(LOCAL), "unknown class in [class]"


# --- strace's tests in the guest ------------------------------------------------------------


@dataclass
class Oracle:
    """The booted guest with the included programs, and the results so far."""

    catalogue: Catalogue
    guest: Any
    failed_builds: dict[str, str]
    version: str
    results: dict[str, Any] = field(default_factory=dict)

    def run(self, name: str) -> Any:
        """Run included test *name* (once) and return its result."""
        spec: Spec = self.catalogue.candidates[name]
        if spec.prog in self.failed_builds:
            pytest.fail(f"{name}: {self.failed_builds[spec.prog]}", pytrace=False)
        result = self.guest.run(spec)
        self.results[name] = result
        return result


@pytest.fixture(scope="module")
def oracle(conn: Any, libvirt_loop: Any, guest_image: Any, request: Any) -> Any:
    """The strace source tree (cached), the included programs built, a guest running them;
    at the end, the summary on the terminal."""
    require(os.geteuid() == 0, "root (the build cache, qemu:///system)")
    from tests.oracle import build
    from tests.oracle.report import left_out_grouped, summary_lines
    from tests.oracle.runner import OracleGuest

    tree = build.prepare(build.strace_version(guest_image))
    cat = catalogue(tree.source)
    programs = sorted({cat.candidates[name].prog for name in INCLUDED})
    built, failed = build.build_programs(tree, programs)
    image = build.oracle_image(guest_image, tree, built)
    with OracleGuest(conn, libvirt_loop, image) as guest:
        state = Oracle(cat, guest, failed, tree.version)
        yield state
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # the teardown's output is captured else
        write = reporter.write_line
        write("")
        write(f"strace {tree.version} oracle: included tests, per class")
        for line in summary_lines(cat, state.results):
            write("  " + line)
        pending = cat.pending()
        write(f"candidates not included ({len(pending)}):")
        for name, why in pending.items():
            write(f"  {name} [{cat.candidates[name].group}]: {why}")
        write(
            f"left out ({len(cat.left_out)}), by reason (one per line: "
            "`python -m tests.oracle.report --left-out`):"
        )
        for line in left_out_grouped(cat):
            write(f"  {line}")


@pytest.mark.parametrize("name", INCLUDED)
def test_strace_oracle(oracle: Oracle, name: str) -> None:
    """Included strace test *name*: libvirt-nitro prints what the program says strace
    prints."""
    result = oracle.run(name)
    assert result.status == "pass", (
        f"{name} ({result.spec.group}, strace options {result.spec.options or '-'}): "
        f"{result.outcome.reason}\n{result.outcome.diff}"
    )
