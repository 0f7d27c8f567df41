"""The Nitro KVM patch, end to end in an emulated machine.

``kernel/build.sh`` builds the patched kvm/kvm-amd modules for Debian's packaged 6.1 kernel
(cached: a second run rebuilds only what changed); ``kernel/testbed/run`` boots that kernel
under QEMU TCG with ``-cpu max`` (emulated AMD SVM, so KVM runs nested), loads the modules and
runs, in one boot:

* ``kernel/testbed/nitro_test.c``, which prints one ``name: PASS|FAIL (why)`` line per check:
  each check named in its sources (``nitro_test*.c``) is one test here (:data:`CHECKS`);
* ``pytest tests/bed`` of this checkout, with this interpreter, in a chroot into the host's
  root shared read-only over 9p; its JUnit XML comes back through a writable share, and each
  test defined in ``tests/bed/test_*.py`` is one test here (:data:`BED_TESTS`).

A check or bed test that reported nothing fails, with the console's tail.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.support import require

KERNEL = Path(__file__).resolve().parent.parent / "kernel"
BED_DIR = Path(__file__).resolve().parent / "bed"

#: Seconds for kernel/build.sh: a cold build (download, unpack, prepare, modules) takes
#: 3-5 minutes on 2 cores; others build and run VMs on them too.
BUILD_DEADLINE = 3600
#: Seconds for the emulated machine to boot, run nitro_test and the in-bed pytest and power
#: off (2-3 minutes, a libvirt KVM domain included; much more only on a loaded host).
BED_DEADLINE = 600
#: kernel/testbed/run's status when the emulated machine froze whole (supervise.py).
FROZEN = 125
#: Boots again after the emulated machine stalled (froze, or a soft lockup: a CPU that never
#: answers an IPI, seen in QEMU 7.2 TCG's nested SVM, see the closing notes).
FROZEN_RETRIES = 1

#: What the build and the bed need on the host (Debian packages in parentheses).
TOOLS = {
    "apt-get": "apt",
    "dpkg": "dpkg",
    "gcc": "gcc",
    "make": "make",
    "bison": "bison",
    "flex": "flex",
    "bc": "bc",
    "pahole": "dwarves",
    "patch": "patch",
    "xz": "xz-utils",
    "objdump": "binutils",
    "cpio": "cpio",
    "modinfo": "kmod",
    "qemu-system-x86_64": "qemu-system-x86",
}

_RESULT = re.compile(r"^(\w+): (PASS|FAIL)(?: \((.*)\))?$")


def _checks() -> list[str]:
    """init's ``load_modules`` and each ``check("name", ...)`` line of nitro_test's sources."""
    names = ["load_modules"]
    for path in sorted((KERNEL / "testbed").glob("nitro_test*.c")):
        names += re.findall(r'^\s*check\("(\w+)"', path.read_text(), re.M)
    return names


def _bed_tests() -> list[str]:
    """``file.py::test`` (or ``file.py::Class::test``) of every test function defined in
    tests/bed/test_*.py, as pytest collects them (parameters not included); ``file.py`` for
    a file that does not parse."""
    names = []
    for path in sorted(BED_DIR.glob("test_*.py")):
        try:
            tree = ast.parse(path.read_text(), str(path))
        except SyntaxError:
            names.append(path.name)  # fails with the bed's collection error
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("test"):
                    names.append(f"{path.name}::{node.name}")
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                names += [
                    f"{path.name}::{node.name}::{item.name}"
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                    and item.name.startswith("test")
                ]
    return names


CHECKS = _checks()
BED_TESTS = _bed_tests()


@dataclass
class BedCase:
    """One ``<testcase>`` of the in-bed pytest's JUnit XML."""

    name: str  # pytest's name within the test: "test_x" or "test_x[param]"
    outcome: str  # "passed", "failed" (failure or error) or "skipped"
    message: str  # why, for a failure or skip: pytest's message and report text


@dataclass
class Bed:
    """What one boot of the test bed reported."""

    console: str  # the serial console, as text
    results: dict[str, tuple[str, str]]  # nitro_test check name -> ("PASS"|"FAIL", why)
    cases: dict[str, list[BedCase]] = field(default_factory=dict)  # BED_TESTS name -> cases
    junit_error: str = ""  # why the JUnit XML could not be read, if it could not

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.console.splitlines()[-lines:])

    def hang_report(self) -> str:
        """If an in-bed test started and never ended: its name, the Python stacks and the
        kernel's hung-task and lockup reports the bed printed; else ""."""
        lines = self.console.splitlines()
        running = None
        for line in lines:
            if ": pytest test starts: " in line:
                running = line.split(": pytest test starts: ", 1)[1].rsplit(" at ", 1)[0]
            elif ": pytest test ends: " in line:
                running = None
        stacks = [
            line
            for line in lines
            if line.startswith(("Thread 0x", "Current thread 0x", "  File ", "Timeout ("))
            or "ran past its" in line
        ]
        kernel = [
            line
            for line in lines
            if line.startswith("testbed: dmesg")
            and any(word in line for word in ("blocked for more than", "lockup", "Call Trace"))
        ]
        if running is None and not stacks and not kernel:
            return ""
        head = (
            f"the bed hung in {running}" if running else "a test of the bed ran past its deadline"
        )
        return "\n".join([head, *stacks[-80:], *kernel[-40:]])


def _junit_key(classname: str, name: str) -> str:
    """The :data:`BED_TESTS` name of a JUnit test case: classname ``tests.bed.test_mod`` (or
    ``tests.bed.test_mod.TestClass``) and name ``test_x[param]`` give ``test_mod.py::test_x``
    (``test_mod.py::TestClass::test_x``); a module that failed to import (classname empty,
    name ``tests.bed.test_mod``) gives ``test_mod.py``."""
    if not classname:
        classname, name = name, ""
    parts = classname.split(".")
    module = next((i for i, part in enumerate(parts) if part.startswith("test_")), None)
    if module is None:
        return f"{classname}::{name}"
    key = "::".join([f"{parts[module]}.py", *parts[module + 1 :]])
    return f"{key}::{name.split('[')[0]}" if name else key


def parse_junit(path: Path) -> dict[str, list[BedCase]]:
    """The test cases of a pytest JUnit XML file, keyed by :func:`_junit_key`.

    :raises OSError, ElementTree.ParseError: the file is missing or truncated.
    """
    cases: dict[str, list[BedCase]] = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        if not case.get("name"):
            continue  # the test a KeyboardInterrupt (the bed's deadline) stopped
        key = _junit_key(case.get("classname", ""), case.get("name", ""))
        outcome, why = "passed", []
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
            else:
                continue
            why.append(f"{child.tag}: {child.get('message', '')}\n{child.text or ''}".strip())
        cases.setdefault(key, []).append(BedCase(case.get("name", ""), outcome, "\n".join(why)))
    return cases


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Bed:
    missing = [f"{tool} ({pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    require(not missing, f"kernel build/test bed tools: {', '.join(missing)}")
    require(Path("/usr/include/libelf.h").exists(), "libelf-dev")
    require(Path("/bin/busybox").exists(), "busybox-static")
    require(os.geteuid() == 0, "root (kernel/build.sh caches in /var/cache/libvirt-nitro)")

    build = subprocess.run(
        [KERNEL / "build.sh"], capture_output=True, text=True, timeout=BUILD_DEADLINE
    )
    if build.returncode:
        pytest.fail(f"kernel/build.sh failed:\n{build.stderr[-4000:]}", pytrace=False)
    out = build.stdout.split()[-1]
    for attempt in range(1 + FROZEN_RETRIES):
        results_dir = tmp_path_factory.mktemp("bed-results")
        run = subprocess.run(
            [
                KERNEL / "testbed" / "run",
                out,
                str(BED_DEADLINE),
                "--results",
                results_dir,
                "--python",
                sys.executable,
            ],
            capture_output=True,
            text=True,
            timeout=BED_DEADLINE + 60,
        )
        (results_dir / "console.log").write_text(run.stdout)  # kept for a look afterwards
        stalled = run.returncode == FROZEN or "soft lockup" in run.stdout
        if "testbed: end" in run.stdout or not stalled or attempt == FROZEN_RETRIES:
            break
        # The emulated machine stalled (a CPU never answered an IPI: soft lockup panic, or it
        # froze whole, kernel/testbed/supervise.py): said loudly, and booted again once; a
        # second stall fails every test below with the report.
        warnings.warn(
            f"the test bed froze and was booted again:\n{run.stderr}\n"
            + "\n".join(run.stdout.splitlines()[-15:]),
            stacklevel=1,
        )
    results = {}
    for line in run.stdout.replace("\r", "").splitlines():
        match = _RESULT.match(line.strip())
        if match:
            results[match[1]] = (match[2], match[3] or "")
    bed = Bed(run.stdout.replace("\r", ""), results)
    if "testbed: end" not in bed.console:
        pytest.fail(
            f"the test bed did not finish (exit {run.returncode}):\n{bed.hang_report()}\n"
            f"{bed.tail()}\n{run.stderr}\n(whole console: {results_dir / 'console.log'})",
            pytrace=False,
        )
    try:
        bed.cases = parse_junit(results_dir / "junit.xml")
    except (OSError, ElementTree.ParseError) as exc:
        bed.junit_error = f"no JUnit XML from the in-bed pytest ({exc})"
    return bed


@pytest.mark.parametrize("check", CHECKS)
def test_in_testbed(bed: Bed, check: str) -> None:
    if check not in bed.results:
        pytest.fail(f"{check} reported nothing; console:\n{bed.tail()}", pytrace=False)
    status, why = bed.results[check]
    assert status == "PASS", why


def test_testbed_reports_only_known_checks(bed: Bed) -> None:
    assert set(bed.results) <= set(CHECKS)
    assert f"nitro_test: done {len(CHECKS) - 1} passed 0 failed" in bed.console


@pytest.mark.parametrize("test", BED_TESTS)
def test_in_bed_pytest(bed: Bed, test: str) -> None:
    # the test's own cases, or its module's collection error
    cases = bed.cases.get(test) or bed.cases.get(test.split("::")[0])
    if not cases:
        why = bed.junit_error or "it is not in the in-bed pytest's JUnit XML"
        pytest.fail(
            f"{test} reported nothing: {why}\n{bed.hang_report()}\nconsole:\n{bed.tail(60)}",
            pytrace=False,
        )
    failed = [case for case in cases if case.outcome == "failed"]
    if failed:
        pytest.fail(
            "\n\n".join(f"in the bed, {case.name}:\n{case.message}" for case in failed),
            pytrace=False,
        )
    if all(case.outcome == "skipped" for case in cases):
        # a requirement the bed lacked: a failure under LIBVIRT_NITRO_REQUIRE_ALL (CI)
        require(False, f"in the bed: {cases[0].message}")


def test_bed_reports_only_known_tests(bed: Bed) -> None:
    assert not bed.junit_error, f"{bed.junit_error}; console:\n{bed.tail(60)}"
    files = {test.split("::")[0] for test in BED_TESTS}
    assert set(bed.cases) <= set(BED_TESTS) | files


def test_testbed_kernel_log_is_clean(bed: Bed) -> None:
    bad = [
        line
        for line in bed.console.splitlines()
        if line.startswith("testbed: dmesg:")
        and re.search(r"BUG|WARNING|Oops|general protection|blocked for more than", line)
    ]
    assert not bad, "\n".join(bad)
