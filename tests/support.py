"""Helpers shared by the test modules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]

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


class TraceProcess:
    """``python -m libvirt_nitro -c URI trace NAME OPTIONS...`` in a subprocess, its stdout
    and stderr lines collected by reader threads (:attr:`stdout`, :attr:`stderr`).

    *timeout* bounds each wait, in seconds (the emulated test bed, whose Python is ~35x
    slower, passes more). Its faulthandler is on, so that :meth:`stacks` can show where
    a tracer that hangs is.
    """

    def __init__(
        self, name: str, *options: str, uri: str = "qemu:///system", timeout: float = 60.0
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "libvirt_nitro", "-c", uri, "trace", name, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def stacks(self) -> str:
        """Its stderr; if it still runs, ended by SIGABRT first, so that the stacks of its
        threads (faulthandler) are there: what a wait that timed out shows."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            for reader in self._readers:
                reader.join(5)
        return "\n".join(self.stderr)

    def wait_armed(self) -> float:
        """Wait until the tracer says it traces; return the seconds since it started.
        Fails if it exited instead."""
        begin = time.monotonic()
        wait_for(
            lambda: (
                any(line.startswith("libvirt-nitro: tracing") for line in self.stderr)
                or self.proc.poll() is not None
            ),
            "the tracer to arm the guest",
            timeout=self.timeout,
            interval=0.2,
            detail=self.stacks,
        )
        assert self.proc.poll() is None, self.stderr
        return time.monotonic() - begin

    def wait_events(self, count: int) -> None:
        """Wait until *count* lines of output (events) came, or fail."""
        wait_for(
            lambda: len(self.stdout) >= count or self.proc.poll() is not None,
            f"{count} events from the tracer",
            timeout=self.timeout,
            interval=0.2,
            detail=lambda: f"{len(self.stdout)} events; stderr:\n{self.stacks()}",
        )
        assert len(self.stdout) >= count, self.stderr

    def interrupt(self) -> int:
        """Ctrl-C (SIGINT); the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.wait_exit()

    def wait_exit(self, timeout: float | None = None) -> int:
        """Wait for the tracer (and, for its stderr, the guard) to finish; its status."""
        timeout = self.timeout if timeout is None else timeout
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def records(self) -> list[dict[str, Any]]:
        """The ``--json`` lines it printed."""
        return [json.loads(line) for line in self.stdout]

    def kill(self) -> None:
        """Make sure it is gone (test cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(self.timeout)
