"""Helpers shared by the test modules."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

#: Set by .ci/run: a missing requirement is then a failure, never a skip.
REQUIRE_ALL = os.environ.get("LIBVIRT_NITRO_REQUIRE_ALL") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip the calling test (fail it under LIBVIRT_NITRO_REQUIRE_ALL=1) unless *condition*.

    Use only for a requirement the machine may lack (root, /dev/kvm, libvirtd), never to
    hide a bug.
    """
    if condition:
        return
    message = f"Requirement not met: {reason}"
    if REQUIRE_ALL:
        pytest.fail(message + " (LIBVIRT_NITRO_REQUIRE_ALL=1)", pytrace=False)
    pytest.skip(message)


def wait_for(
    probe: Callable[[], T | None],
    what: str,
    timeout: float = 30.0,
    interval: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll *probe* until it returns something truthy; fail naming *what* after *timeout* s
    (with *detail()*, what was seen instead, in the failure message)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            seen = f"; seen:\n{detail()}" if detail else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{seen}", pytrace=False)
        time.sleep(interval)


def libvirtd_pid() -> int:
    """The pid of the running libvirtd (started as ``libvirtd -d``, as scripts/setup-host)."""
    return int(Path("/run/libvirtd.pid").read_text().strip())


def stop_libvirtd() -> None:
    """SIGTERM libvirtd and wait until it has exited (every libvirt connection dies)."""
    old = libvirtd_pid()
    os.kill(old, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{old}").exists(), "libvirtd to exit", timeout=120)


def start_libvirtd() -> None:
    """``libvirtd -d``, then wait until qemu:///system answers."""
    subprocess.run(["libvirtd", "-d"], check=True, timeout=60)
    wait_for(_virsh_answers, "libvirtd to answer again", timeout=120)


def _virsh_answers() -> bool:
    done = subprocess.run(
        ["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=30, check=False
    )
    return done.returncode == 0


def require_runs_last(request: pytest.FixtureRequest) -> None:
    """Fail (skip outside CI) unless the calling test comes after every test but those that
    restart libvirtd too (conftest's ``RUN_LAST``): a restart closes every libvirt
    connection, the session fixtures' too."""
    from tests.conftest import RUN_LAST

    items = request.session.items
    index = items.index(request.node)
    later = [item for item in items[index + 1 :] if item.name.split("[")[0] not in RUN_LAST]
    require(not later, "the libvirtd restart tests run last in the session")
