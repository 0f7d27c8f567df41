"""The guard: gives the guest back if the tracer dies.

A tracer that clears EFER.SCE and sets breakpoints and then dies (SIGKILL, crash) would leave
the guest's processes to die on their next system call: QEMU keeps whatever state the last
gdbstub client left (DESIGN.md §4). So before it touches the guest the tracer starts this
guard as a separate process in its own session (Ctrl-C in the terminal does not reach it; it
ignores SIGINT and SIGHUP), and talks to it over a pipe (JSON lines on the guard's stdin):

- ``{"socket": …, "uri": …, "uuid": …, "name": …}`` first;
- ``{"plan": …}`` (an :class:`~libvirt_nitro.trap.engine.ArmingPlan`) before arming;
- ``{"done": true}`` once the tracer has given the guest back itself.

End of file without ``done`` means the tracer is gone (the kernel closes its end of the pipe
however it died). The guard then connects to the stub (a new connection stops the guest and
drops every breakpoint), rewinds a vCPU caught mid-trap, puts back each vCPU's original EFER,
detaches (the guest resumes), closes the stub through libvirt and removes its socket
directory. The guard inherits the per-domain trace lock, which stays held until it exits.

Run as ``python -m libvirt_nitro.gdbstub.guard`` by :class:`Guard`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from ..errors import NitroError

__all__ = ["Guard", "restore", "main"]

#: How long the guard keeps trying to reach the stub after the tracer died (s).
CONNECT_TIMEOUT = 10.0


class Guard:
    """Handle on a running guard process (see the module docstring)."""

    def __init__(self, process: subprocess.Popen):
        self.process = process

    @classmethod
    def spawn(cls, *, socket: Path, uri: str, uuid: str, name: str, lock_fd: int) -> Guard:
        """Start the guard; it holds *lock_fd* (the domain's trace lock) until it exits."""
        process = subprocess.Popen(
            [sys.executable, "-m", "libvirt_nitro.gdbstub.guard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(lock_fd,),
            cwd="/",
            env={**os.environ, "PYTHONPATH": _package_root()},
        )
        guard = cls(process)
        guard.send({"socket": str(socket), "uri": uri, "uuid": uuid, "name": name})
        return guard

    def send(self, message: dict[str, Any]) -> None:
        """Send one message (a JSON line)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 10.0) -> None:
        """Tell the guard the guest was given back, and wait for it to exit."""
        try:
            self.send({"done": True})
            assert self.process.stdin is not None
            self.process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def abandon(self, timeout: float = 60.0) -> None:
        """Hand the guest over: close the pipe without ``done`` and wait for the guard
        to restore it."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def restore(socket: str, plan: dict | None) -> list[str]:
    """Connect to the stub at *socket* and give the guest back (see the module doc).

    Returns what was done; an empty list if the stub is gone (the domain stopped).
    """
    from ..trap.engine import ArmingPlan, restore_guest
    from .gdbtarget import GdbTarget
    from .rsp import RspClient

    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            client = RspClient(socket, timeout=5.0)
            break
        except NitroError as exc:
            if isinstance(exc.__cause__, (FileNotFoundError, ConnectionRefusedError)):
                return []  # no stub listening: the domain (or its stub) is gone
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)  # the dead tracer's connection is still being torn down
    try:
        client.stop_status()  # a new connection's '?' drops every breakpoint
        actions = ["breakpoints dropped"]
        if plan is not None:
            actions += restore_guest(GdbTarget(client), ArmingPlan.from_json(plan))
        client.detach()  # the guest resumes
        actions.append("guest resumed")
    finally:
        client.close()
    return actions


def _close_stub(uri: str, uuid: str) -> None:
    from ..domain import libvirt_module, open_connection
    from .session import stop_gdbserver

    libvirt = libvirt_module()
    conn = open_connection(uri)
    try:
        dom = conn.lookupByUUIDString(uuid)
        if dom.isActive():
            stop_gdbserver(dom)
    except (libvirt.libvirtError, NitroError):
        pass  # the domain is gone (or went while we asked)
    finally:
        conn.close()


def main(stdin: IO[bytes] | None = None) -> int:
    """The guard process (see the module docstring); returns its exit status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stream = stdin or sys.stdin.buffer
    config: dict[str, Any] = {}
    plan = None
    for line in stream:
        message = json.loads(line)
        if message.get("done"):
            return 0
        plan = message.get("plan", plan)
        config.update({k: v for k, v in message.items() if k != "plan"})
    if "socket" not in config:
        return 0  # the tracer died before it started anything
    name = config.get("name", config.get("uuid"))
    try:
        actions = restore(config["socket"], plan)
        _close_stub(config["uri"], config["uuid"])
    except Exception as exc:  # the guard must report, whatever failed
        print(f"libvirt-nitro guard: {name}: could not restore the guest: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(Path(config["socket"]).parent, ignore_errors=True)
    if actions:
        print(
            f"libvirt-nitro guard: tracer of {name} died; guest given back: " + "; ".join(actions),
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
