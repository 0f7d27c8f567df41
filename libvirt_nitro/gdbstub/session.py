"""QEMU's gdbstub, started and stopped through libvirt, on a socket only root can reach.

The stub gives full control of the guest, so its unix socket lives in a directory of its
own, owned by QEMU's user (QEMU creates the socket) with mode 0700, under a root-owned
``/run/libvirt-nitro/gdb`` that others may only traverse. (The per-domain trace lock is
:func:`libvirt_nitro.runtime.acquire_trace_lock`.)

libvirt reports success for an HMP command whatever QEMU printed (DESIGN.md §4), so every
reply text is checked.

QEMU keeps one stub per domain. Closing ours must not depend on the connection it was opened
with: if libvirtd restarted meanwhile, :meth:`GdbstubSession.stop` closes it through a new
connection. A stub of ours left open all the same (libvirtd was down when the tracer ended)
is closed by the next tracer, which holds the domain's trace lock and so knows that no
tracer or guard of ours still uses it (:meth:`GdbstubSession.start`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain import hmp, libvirt_module, open_connection
from ..errors import GdbstubError, NitroError
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
    #: The libvirt URI and domain UUID, to close the stub through a new connection.
    uri: str = ""
    uuid: str = ""

    @classmethod
    def start(cls, dom: Any, qemu_pid: int, uuid: str) -> GdbstubSession:
        """Start the stub of *dom* (whose QEMU runs as *qemu_pid*) on a private socket. The
        caller holds the domain's trace lock: a stub of ours still open is a stale one (its
        tracer ended while libvirtd was away) and is closed first.

        :raises GdbstubError: QEMU refused; the message says why (e.g. a stub is already
            running for another debugger).
        """
        uid, gid = _owner(qemu_pid)
        parent = private_dir(RUN_DIR / "gdb", 0o711)
        directory = private_dir(parent / uuid, 0o700, uid, gid)
        socket_path = directory / "gdb.sock"
        socket_path.unlink(missing_ok=True)
        command = f"gdbserver unix:{socket_path},server=on,wait=off"
        reply = hmp(dom, command)
        if "Could not open gdbserver" in reply and _stub_is_ours(dom):
            stop_gdbserver(dom)
            reply = hmp(dom, command)
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
        return cls(dom, directory, socket_path, dom.connect().getURI(), uuid)

    def stop(self) -> None:
        """Close the stub and remove its directory; tolerates a domain that is gone, and a
        connection that died (libvirtd restarted): then through a new one."""
        libvirt = libvirt_module()
        try:
            _close_if_active(self.dom)
        except (libvirt.libvirtError, NitroError):
            self._stop_through_new_connection()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _stop_through_new_connection(self) -> None:
        libvirt = libvirt_module()
        try:
            conn = open_connection(self.uri)
        except NitroError:
            return  # libvirtd is not back: the next tracer closes the stale stub
        try:
            _close_if_active(conn.lookupByUUIDString(self.uuid))
        except (libvirt.libvirtError, NitroError):
            pass  # the domain is gone, and its stub with it
        finally:
            conn.close()


def _close_if_active(dom: Any) -> None:
    if dom.isActive():
        stop_gdbserver(dom)


def _stub_is_ours(dom: Any) -> bool:
    """True when the domain's open gdbstub listens on a socket of ours (``info chardev``:
    ``gdb: filename=[dis]connected:unix:/run/libvirt-nitro/gdb/UUID/gdb.sock,server=on``),
    not on one of another debugger."""
    ours = f"unix:{RUN_DIR / 'gdb'}/"
    for line in hmp(dom, "info chardev").splitlines():
        label, _, detail = line.partition(": filename=")
        if label.strip() == "gdb" and ours in detail:
            return True
    return False


def _owner(pid: int) -> tuple[int, int]:
    """The effective uid and gid of process *pid* (QEMU runs as libvirt-qemu)."""
    ids: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid"):
                ids[key] = int(value.split()[1])
    return ids["Uid"], ids["Gid"]
