"""QEMU's gdbstub, started and stopped through libvirt, on a socket only root can reach.

The stub gives full control of the guest, so its unix socket lives in a directory of its
own, owned by QEMU's user (QEMU creates the socket) with mode 0700, under a root-owned
``/run/libvirt-nitro/gdb`` that others may only traverse. (The per-domain trace lock is
:func:`libvirt_nitro.runtime.acquire_trace_lock`.)

libvirt reports success for an HMP command whatever QEMU printed (DESIGN.md §4), so every
reply text is checked.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain import hmp, libvirt_module
from ..errors import GdbstubError
from ..runtime import RUN_DIR, private_dir

__all__ = ["GdbstubSession", "stop_gdbserver"]


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
        parent = private_dir(RUN_DIR / "gdb", 0o711)
        directory = private_dir(parent / uuid, 0o700, uid, gid)
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
