"""Helpers for the tracing tests: run guest commands while libvirt's loop delivers events."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from libvirt_nitro.domain import hmp
from libvirt_nitro.event_ids import EVENT_ID_SYSCALL
from libvirt_nitro.ioctl import x86
from libvirt_nitro.output import EventPrinter
from tests.support import wait_for

_EFER = re.compile(r"EFER=([0-9a-f]+)")


def guest_efers(dom: Any) -> list[int]:
    """EFER of every vCPU, from the QEMU monitor (independent of any gdbstub)."""
    return [int(value, 16) for value in _EFER.findall(hmp(dom, "info registers -a"))]


def syscalls_enabled(dom: Any) -> bool:
    """True when every vCPU has EFER.SCE set (the guest is not trapped, or given back)."""
    efers = guest_efers(dom)
    return bool(efers) and all(efer & x86.EFER_SCE for efer in efers)


def run_traced_events(
    libvirt: Any, tracer: Any, action: Callable[[], Any], timeout: float = 180.0
) -> tuple[list[Any], Any]:
    """Run *action* (a guest command) in a thread while this thread runs libvirt's event loop;
    return (the events delivered meanwhile, the action's result)."""
    events: list[Any] = []
    callback = tracer.eventRegisterAny(
        EVENT_ID_SYSCALL, lambda _c, _d, event, _o: events.append(event), None
    )
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:  # re-raised in the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()

    def finished() -> bool:
        libvirt.virEventRunDefaultImpl()
        return not worker.is_alive()

    wait_for(finished, "the guest command to finish under tracing", timeout=timeout, interval=0)
    tracer.dispatch()
    tracer.eventDeregisterAny(callback)
    if "error" in outcome:
        raise outcome["error"]
    return events, outcome["value"]


def run_traced(libvirt: Any, tracer: Any, action: Callable[[], Any], timeout: float = 180.0):
    """As :func:`run_traced_events`, with the events as JSON records (``trace --json``)."""
    events, value = run_traced_events(libvirt, tracer, action, timeout)
    printer = EventPrinter(stream=None)
    return [printer.record(event) for event in events], value


def of_process(records: list[dict], cr3: int) -> list[dict]:
    """The records of one address space."""
    return [record for record in records if record["cr3"] == cr3]
