"""QEMU's gdbstub, started and stopped through libvirt, on a socket only root can reach.

The stub gives full control of the guest, so its unix socket lives in a directory of its
own, owned by QEMU's user (QEMU creates the socket) with mode 0700, under a root-owned
``/run/libvirt-nitro/gdb`` that others may only traverse. A per-domain lock file (flock)
makes a second tracer of the same domain fail at once; the guard process inherits the lock,
so it stays held until the guest has been given back.

libvirt reports success for an HMP command whatever QEMU printed (DESIGN.md §4), so every
reply text is checked.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain import hmp, libvirt_module
from ..errors import AlreadyTraced, GdbstubError

__all__ = ["RUN_DIR", "GdbstubSession", "acquire_trace_lock", "stop_gdbserver"]

#: Root of libvirt-nitro's runtime files.
RUN_DIR = Path(os.environ.get("LIBVIRT_NITRO_RUN", "/run/libvirt-nitro"))


def _private_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> Path:
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def acquire_trace_lock(uuid: str, name: str) -> int:
    """Take the per-domain trace lock; return its fd (inheritable, for the guard).

    :raises AlreadyTraced: another tracer or its guard holds it.
    """
    locks = _private_dir(RUN_DIR / "trace", 0o700)
    fd = os.open(locks / f"{uuid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyTraced(f"domain {name!r} is already being traced by libvirt-nitro") from None
    return fd


def stop_gdbserver(dom: Any) -> None:
    """``gdbserver none``: close QEMU's stub (and its socket). Ignores a stub already gone."""
    reply = hmp(dom, "gdbserver none")
    if "Disabled gdbserver" not in reply and reply.strip():
        raise GdbstubError(f"gdbserver none on {dom.name()!r}: {reply.strip()}")


@dataclass
class GdbstubSession:
    """A gdbstub of one running domain, listening on :attr:`socket_path`.

    Create with :meth:`start`; :meth:`stop` closes the stub and removes its directory.
    """

    dom: Any
    directory: Path
    socket_path: Path

    @classmethod
    def start(cls, dom: Any, qemu_pid: int, uuid: str) -> GdbstubSession:
        """Start the stub of *dom* (whose QEMU runs as *qemu_pid*) on a private socket.

        :raises GdbstubError: QEMU refused; the message says why (e.g. a stub is already
            running for another debugger).
        """
        uid, gid = _owner(qemu_pid)
        parent = _private_dir(RUN_DIR / "gdb", 0o711)
        directory = _private_dir(parent / uuid, 0o700, uid, gid)
        socket_path = directory / "gdb.sock"
        socket_path.unlink(missing_ok=True)
        reply = hmp(dom, f"gdbserver unix:{socket_path},server=on,wait=off")
        if "Waiting for gdb connection" not in reply:
            shutil.rmtree(directory, ignore_errors=True)
            detail = " ".join(reply.split()) or "no reply"
            hint = (
                " (a gdbstub is already open on this domain, for another debugger? "
                f"`virsh qemu-monitor-command --hmp {dom.name()} 'gdbserver none'` closes it)"
                if "Could not open gdbserver" in reply
                else ""
            )
            raise GdbstubError(f"QEMU could not start its gdbstub: {detail}{hint}")
        return cls(dom, directory, socket_path)

    def stop(self) -> None:
        """Close the stub and remove its directory; tolerates a domain that is gone."""
        libvirt = libvirt_module()
        try:
            if self.dom.isActive():
                stop_gdbserver(self.dom)
        except libvirt.libvirtError:
            pass  # the domain is gone, and its stub with it
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _owner(pid: int) -> tuple[int, int]:
    """The effective uid and gid of process *pid* (QEMU runs as libvirt-qemu)."""
    ids: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid"):
                ids[key] = int(value.split()[1])
    return ids["Uid"], ids["Gid"]
