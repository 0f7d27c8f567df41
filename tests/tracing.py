"""Helpers for the tracing tests: run guest commands while libvirt's loop delivers events."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from libvirt_nitro import x86
from libvirt_nitro.domain import hmp
from libvirt_nitro.event_ids import EVENT_ID_SYSCALL
from libvirt_nitro.output import JsonFormatter
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
    formatter = JsonFormatter()
    return [formatter.as_dict(event.record) for event in events], value


def of_process(records: list[dict], cr3: int) -> list[dict]:
    """The records of one address space."""
    return [record for record in records if record["cr3"] == cr3]


def trap_during(guest: Any, on_trap: Callable[[Any, Any], None], *command: str) -> Any:
    """Run the trap engine on *guest* over a gdbstub session of its own while the guest runs
    *command*; ``on_trap(target, trap_event)`` is called at each trap, with the trapping vCPU
    stopped (so it may read guest state through *target*). Returns the command's result.
    The guest is given back (disarmed, detached, stub closed) whatever happens."""
    from libvirt_nitro.domain import resolve
    from libvirt_nitro.gdbstub.gdbtarget import GdbTarget
    from libvirt_nitro.gdbstub.rsp import RspClient
    from libvirt_nitro.gdbstub.session import GdbstubSession
    from libvirt_nitro.trap.engine import NitroEngine

    process = resolve(guest.dom)
    session = GdbstubSession.start(guest.dom, process.pid, process.uuid)
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = guest.run(*command)
        except BaseException as exc:  # re-raised in the test thread
            outcome["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, daemon=True)
    try:
        client = RspClient(str(session.socket_path))
        target = GdbTarget(client)
        engine = NitroEngine(target, lambda event: on_trap(target, event))
        try:
            engine.arm(engine.plan_arming())
            target.resume()
            worker.start()
            while not done.is_set():
                engine.poll(0.1)
        finally:
            engine.disarm()
            client.detach()
    finally:
        session.stop()
    worker.join(60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
