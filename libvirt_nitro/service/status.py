"""The service's runtime files and ``libvirt-nitro status``.

Each ``serve`` process keeps, in :data:`SERVE_DIR` (``/run/libvirt-nitro/serve``, root-only
0700):

- ``UUID.pid``: its pid, flock-ed for as long as it lives (a held lock *is* "this domain is
  served"; a stale file from a killed process is never mistaken for a live one);
- ``UUID.json``: its state (domain, backend, events, drops, output file, state), rewritten
  atomically about once a second.

The host-wide ``watch`` process keeps ``watch.pid`` the same way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from ..runtime import RUN_DIR

__all__ = [
    "SERVE_DIR",
    "serve_dir",
    "PidLock",
    "holder_pid",
    "write_state",
    "remove_state",
    "read_states",
    "signal_holder",
    "format_table",
]

#: Pid and state files of the service processes.
SERVE_DIR = RUN_DIR / "serve"


def serve_dir() -> Path:
    """:data:`SERVE_DIR`, created root-only (0700) if needed."""
    SERVE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(SERVE_DIR, 0o700)
    return SERVE_DIR


class PidLock:
    """An flock-ed pidfile ``SERVE_DIR/NAME.pid``: held while its process lives.

    :meth:`acquire` returns False if another live process holds it.
    """

    def __init__(self, name: str):
        self.path = SERVE_DIR / f"{name}.pid"
        self._fd = -1

    def acquire(self) -> bool:
        """Take the lock and write our pid; False if another process holds it."""
        serve_dir()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the pidfile and drop the lock; idempotent."""
        if self._fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = -1


def holder_pid(name: str) -> int | None:
    """The pid of the live process holding ``SERVE_DIR/NAME.pid``, or None."""
    path = SERVE_DIR / f"{name}.pid"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it: stale
    finally:
        os.close(fd)


def signal_holder(
    name: str, wait: float = 0.0, signum: signal.Signals = signal.SIGTERM
) -> int | None:
    """Send *signum* to the holder of ``NAME.pid`` (if any); wait up to *wait* s for it to
    go, then SIGKILL it. Returns the pid signalled, or None if nothing held the lock."""
    pid = holder_pid(name)
    if pid is None:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    try:
        signal.pidfd_send_signal(pidfd, signum)
        deadline = time.monotonic() + wait
        while wait > 0 and time.monotonic() < deadline:
            if holder_pid(name) != pid:
                return pid
            time.sleep(0.05)
        if wait > 0 and holder_pid(name) == pid:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
    return pid


def write_state(uuid: str, state: dict[str, Any]) -> None:
    """Atomically (re)write ``UUID.json``."""
    path = serve_dir() / f"{uuid}.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as stream:
        json.dump(state, stream)
    os.replace(tmp, path)


def remove_state(uuid: str) -> None:
    """Remove ``UUID.json`` (the server is exiting)."""
    with contextlib.suppress(FileNotFoundError):
        (SERVE_DIR / f"{uuid}.json").unlink()


def read_states() -> list[dict[str, Any]]:
    """The states of the live servers (state files of dead ones are removed), by name."""
    states = []
    if not SERVE_DIR.is_dir():
        return states
    for path in sorted(SERVE_DIR.glob("*.json")):
        uuid = path.stem
        pid = holder_pid(uuid)
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno != errno.ENOENT:
                raise
            continue
        if pid is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        state["pid"] = pid
        states.append(state)
    return sorted(states, key=lambda s: s.get("name", ""))


def format_table(states: list[dict[str, Any]]) -> str:
    """``status``'s table: one line per traced domain."""
    lines = [
        f"{'Name':<24} {'State':<12} {'Backend':<8} {'Events':>10} {'Dropped':>8} {'PID':>7}  "
        "Output"
    ]
    for state in states:
        output = state.get("output", "-")
        nats = state.get("nats")
        if nats:  # <nitro:nats>: the sink's connection and counts
            output = (
                f"{output} + NATS {nats['state']} ({nats['published']} published, "
                f"{nats['spooled']} spooled)"
            )
        lines.append(
            f"{state.get('name', '?'):<24} {state.get('state', '?'):<12} "
            f"{state.get('backend', '?'):<8} {state.get('events', 0):>10} "
            f"{state.get('dropped', 0):>8} {state.get('pid', '?'):>7}  {output}"
        )
    return "\n".join(lines)
