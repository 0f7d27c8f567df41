"""QEMU monitor commands sent through libvirt (``virDomainQemuMonitorCommand``).

libvirt owns QEMU's monitor socket; this is the supported way to share it. Note that for HMP
commands libvirt reports success whatever the command printed: callers must check the text.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import QemuMonitorError
from .connection import describe_error, libvirt_module

__all__ = ["qmp", "hmp"]


def qmp(dom: Any, command: str, arguments: dict[str, Any] | None = None) -> Any:
    """Run the QMP *command* on *dom*'s QEMU and return its ``"return"`` member.

    :raises QemuMonitorError: libvirt refused the call or QEMU answered with an error.
    """
    request: dict[str, Any] = {"execute": command}
    if arguments:
        request["arguments"] = arguments
    reply = json.loads(_monitor_command(dom, json.dumps(request), hmp=False, label=command))
    if "error" in reply:
        error = reply["error"]
        raise QemuMonitorError(f"QMP {command}: {error.get('class')}: {error.get('desc')}")
    return reply.get("return")


def hmp(dom: Any, command_line: str) -> str:
    """Run the human-monitor *command_line* on *dom*'s QEMU and return its text output."""
    return _monitor_command(dom, command_line, hmp=True, label=command_line.split()[0])


def _monitor_command(dom: Any, text: str, hmp: bool, label: str) -> str:
    libvirt = libvirt_module()
    import libvirt_qemu

    flags = libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP if hmp else 0
    try:
        return libvirt_qemu.qemuMonitorCommand(dom, text, flags)
    except libvirt.libvirtError as exc:
        raise QemuMonitorError(
            f"QEMU monitor command {label!r} on {dom.name()!r}: {describe_error(exc)}"
        ) from None
