"""The Nitro KVM patch, end to end in an emulated machine.

``kernel/build.sh`` builds the patched kvm/kvm-amd modules for Debian's packaged 6.1 kernel
(cached: a second run rebuilds only what changed); ``kernel/testbed/run`` boots that kernel
under QEMU TCG with ``-cpu max`` (emulated AMD SVM, so KVM runs nested), loads the modules
and runs ``kernel/testbed/nitro_test.c``, which prints one ``name: PASS|FAIL (why)`` line per
check.  Each check named in nitro_test.c is one test here; a check that printed nothing fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import require

KERNEL = Path(__file__).resolve().parent.parent / "kernel"

#: Seconds for kernel/build.sh: a cold build (download, unpack, prepare, modules) takes
#: 3-5 minutes on 2 cores; others build and run VMs on them too.
BUILD_DEADLINE = 3600
#: Seconds for the emulated machine to boot, run nitro_test and power off (about 10-30).
BED_DEADLINE = 600

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
    "qemu-system-x86_64": "qemu-system-x86",
}

_RESULT = re.compile(r"^(\w+): (PASS|FAIL)(?: \((.*)\))?$")


def _checks() -> list[str]:
    source = (KERNEL / "testbed" / "nitro_test.c").read_text()
    return ["load_modules", *re.findall(r'^\s*check\("(\w+)"', source, re.M)]


CHECKS = _checks()


@dataclass
class Bed:
    """What one boot of the test bed reported."""

    console: str  # the serial console, as text
    results: dict[str, tuple[str, str]]  # check name -> ("PASS"|"FAIL", why)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.console.splitlines()[-lines:])


@pytest.fixture(scope="module")
def bed() -> Bed:
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
    run = subprocess.run(
        [KERNEL / "testbed" / "run", out, str(BED_DEADLINE)],
        capture_output=True,
        text=True,
        timeout=BED_DEADLINE + 60,
    )
    results = {}
    for line in run.stdout.replace("\r", "").splitlines():
        match = _RESULT.match(line.strip())
        if match:
            results[match[1]] = (match[2], match[3] or "")
    bed = Bed(run.stdout.replace("\r", ""), results)
    if "testbed: end" not in bed.console:
        pytest.fail(
            f"the test bed did not finish (exit {run.returncode}):\n{bed.tail()}\n{run.stderr}",
            pytrace=False,
        )
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


def test_testbed_kernel_log_is_clean(bed: Bed) -> None:
    bad = [
        line
        for line in bed.console.splitlines()
        if line.startswith("testbed: dmesg:")
        and re.search(r"BUG|WARNING|Oops|general protection", line)
    ]
    assert not bad, "\n".join(bad)
