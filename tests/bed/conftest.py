"""Fixtures of the tests that run inside the emulated test bed machine.

``tests/test_kernel_nitro.py`` boots the bed (``kernel/testbed/run``), whose init runs
``pytest tests/bed`` with the patched kvm/kvm-amd loaded and ``LIBVIRT_NITRO_IN_BED=1``; each
test here comes back as one host test.  A host pytest run of ``tests/`` does not collect this
directory (``tests/conftest.py`` ignores it); run explicitly outside the bed, every test skips.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from libvirt_nitro.ioctl import Kvm, Vm

#: Set by the bed's init (kernel/testbed/init).
IN_BED = os.environ.get("LIBVIRT_NITRO_IN_BED") == "1"
#: Seconds one in-bed test may run (Python runs ~35x slower here than on the host): then its
#: threads' stacks go to the console and it fails, and the next test runs.
TEST_DEADLINE = float(os.environ.get("LIBVIRT_NITRO_BED_TEST_DEADLINE", "300"))
#: Seconds after that before a test that could not even be interrupted (stuck in the
#: kernel) gets its stacks dumped and pytest exits, so that the bed still reports.
HARD_GRACE = 60.0


def _stamp(config: pytest.Config, what: str) -> None:
    """A ``testbed:`` line with the bed's uptime (CLOCK_MONOTONIC there), for the timings."""
    if IN_BED:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"testbed: pytest {what} at {time.monotonic():.2f} s")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stamp the end of pytest's start-up (interpreter, imports, plugins, this file)."""
    _stamp(session.config, "session starts")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stamp the end of collection (the test modules imported)."""
    _stamp(session.config, "collected")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stamp the end of the tests."""
    _stamp(session.config, "tests done")


class DeadlinePassed(Exception):
    """Raised in the main thread when a test runs past :data:`TEST_DEADLINE`."""


def _on_deadline(nodeid: str) -> None:
    """Watchdog thread: dump every thread's stack, then interrupt the main thread."""
    print(f"testbed: {nodeid} ran past its {TEST_DEADLINE:.0f} s deadline", file=sys.stderr)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR2)


def _raise_deadline(_signum: int, _frame: object) -> None:
    raise DeadlinePassed(f"ran past its {TEST_DEADLINE:.0f} s deadline in the bed (stacks above)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Each test under a deadline, announced on the console (``testbed: test starts/ends``):
    a hang names its test and shows where every thread was."""
    if not IN_BED:
        yield
        return
    _stamp(item.config, f"test starts: {item.nodeid}")
    previous = signal.signal(signal.SIGUSR2, _raise_deadline)
    watchdog = threading.Timer(TEST_DEADLINE, _on_deadline, args=(item.nodeid,))
    watchdog.daemon = True
    watchdog.start()
    faulthandler.dump_traceback_later(TEST_DEADLINE + HARD_GRACE, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        watchdog.cancel()
        signal.signal(signal.SIGUSR2, previous)
        _stamp(item.config, f"test ends: {item.nodeid}")


@pytest.fixture(autouse=True)
def _in_bed() -> None:
    if not IN_BED:
        pytest.skip("runs inside the emulated test bed only (tests/test_kernel_nitro.py)")


@pytest.fixture(scope="session", autouse=True)
def _keeper_vm() -> Iterator[None]:
    """A VM held for the whole session, so that KVM enables SVM on every CPU once instead of
    around each test's VMs (hardware_enable_all() on the first VM, hardware_disable_all()
    after the last): with that churn the emulated machine froze (soft lockup on both CPUs,
    QEMU 7.2 TCG, nested SVM), as nitro_test.c's keeper VM comment says."""
    if not IN_BED:
        yield
        return
    with Kvm.open() as dev, dev.create_vm():
        yield


@pytest.fixture(scope="session")
def kvm() -> Iterator[Kvm]:
    """``/dev/kvm`` of the bed: the patched KVM (nested under the emulated SVM)."""
    with Kvm.open() as dev:
        yield dev


@pytest.fixture
def vm(kvm: Kvm) -> Iterator[Vm]:
    """A new, empty VM (no memory, no vCPU), closed after the test."""
    with kvm.create_vm() as new:
        yield new
