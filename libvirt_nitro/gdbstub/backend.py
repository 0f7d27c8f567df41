"""The gdbstub backend: Nitro tracing of a running domain on a stock host.

:meth:`GdbstubBackend.start` takes the domain's trace lock, starts QEMU's gdbstub on a
private socket, starts the guard, connects (the guest stops), plans and arms the trap engine
(the guard learns the plan first) and resumes the guest; a thread then runs the engine,
pushing every event into the tracer's ring. :meth:`GdbstubBackend.stop` disarms, detaches,
closes the stub and dismisses the guard.

The pipeline runs here, at each trap, while the trapping vCPU waits: the guest task and the
memory of its address space are read through QEMU's RAM (:mod:`libvirt_nitro.introspect`), so
paths and buffers are those of the moment of the call, and filtered calls are never queued.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ..abi.event import Event, fill_from_trap
from ..abi.ring import Ring
from ..backend import Backend
from ..domain.qemu import QemuProcess
from ..errors import NitroError
from ..introspect import GuestIntrospection
from ..pipeline import FIELDS, Pipeline
from ..runtime import acquire_trace_lock
from ..trap.engine import NitroEngine, TrapEvent
from .gdbtarget import GdbTarget
from .guard import Guard
from .rsp import RspClient
from .session import GdbstubSession

__all__ = ["GdbstubBackend"]

log = logging.getLogger(__name__)

#: How often the engine thread looks at its stop flag while the guest runs (s).
POLL_INTERVAL = 0.1


class GdbstubBackend(Backend):
    """Traces the domain *dom* (resolved to *process*) through QEMU's gdbstub.

    *kernel_image* is the guest kernel (bzImage) that names guest tasks; by default the
    domain's directly booted kernel. After a failure in the engine thread, :attr:`error`
    holds it and :attr:`running` is False; the tracer's ring fd is signalled so that an
    event loop wakes up to see it.
    """

    name = "gdbstub"
    in_place_filters = frozenset(FIELDS)
    decodes_at_trap = True
    knows_tasks = True

    def __init__(
        self, dom: Any, process: QemuProcess, uri: str, kernel_image: str | None = None
    ) -> None:
        self.dom = dom
        self.process = process
        self.uri = uri
        self.kernel_image = kernel_image
        self.error: BaseException | None = None
        self.engine: NitroEngine | None = None
        self._ring: Ring | None = None
        self._pipeline: Pipeline | None = None
        self._introspection: GuestIntrospection | None = None
        self._notes: list[str] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd = -1
        self._session: GdbstubSession | None = None
        self._guard: Guard | None = None
        self._client: RspClient | None = None

    @property
    def running(self) -> bool:
        """True while the engine thread traces the guest."""
        return self._thread is not None and self._thread.is_alive()

    def counters(self) -> dict[str, int]:
        """``packets_sent``: RSP packets sent to the stub so far (0 once detached)."""
        client = self._client
        return {"packets_sent": client.packets_sent if client is not None else 0}

    def notes(self) -> list[str]:
        """Why guest processes are not named, if they are not."""
        return list(self._notes)

    def rebind(self, dom: Any) -> None:
        """Close the stub through *dom* (a new connection's) when tracing ends."""
        self.dom = dom
        if self._session is not None:
            self._session.dom = dom

    def open(self, slot_count: int) -> Ring:
        """A new ring of *slot_count* slots, filled by the engine thread."""
        self._ring = Ring(slot_count)
        return self._ring

    def start(self, ring: Ring, pipeline: Pipeline) -> None:
        """Arm the guest and start tracing into *ring*, running *pipeline* at each trap;
        returns once the guest runs armed.

        :raises AlreadyTraced: another tracer holds the domain.
        :raises NitroError: the stub, the guest kernel or the arming failed (nothing is
            left changed in the guest).
        """
        self._ring = ring
        self._pipeline = pipeline
        name, uuid = self.process.name, self.process.uuid
        self._lock_fd = acquire_trace_lock(uuid, name)
        try:
            if pipeline.wants_task:
                self._introspection = GuestIntrospection.for_domain(
                    self.dom, self.process, self.kernel_image
                )
                if self._introspection.layout is None:
                    self._notes.append(
                        f"guest processes not named ({self._introspection.layout_note}); CR3 shown"
                    )
            self._session = GdbstubSession.start(self.dom, self.process.pid, uuid)
            self._guard = Guard.spawn(
                socket=self._session.socket_path,
                uri=self.uri,
                uuid=uuid,
                name=name,
                lock_fd=self._lock_fd,
            )
            self._client = RspClient(str(self._session.socket_path))
            target = GdbTarget(self._client)
            self.engine = NitroEngine(target, self._emit)
            plan = self.engine.plan_arming()
            self._guard.send({"plan": plan.as_json()})
            self.engine.arm(plan)
            target.resume()
        except BaseException:
            self._teardown()
            raise
        self._thread = threading.Thread(target=self._run, name=f"nitro-gdbstub-{name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Disarm and give the guest back; idempotent. Waits for the engine thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        else:
            self._teardown()

    def _emit(self, trap: TrapEvent) -> None:
        """At a trap (vCPU stopped): the event, its record, into the ring."""
        assert self._ring is not None and self._pipeline is not None
        event = Event.build(lambda ev: fill_from_trap(ev, trap))
        task = memory = None
        if self._introspection is not None:
            task, memory = self._introspection.at_trap(event.regs)
        try:
            record = self._pipeline.process(event, task, memory)
        except Exception:  # a bug must not stop tracing: the event is counted, not queued
            self._pipeline.failures["(pipeline)"] += 1
            log.debug("the pipeline failed on a %s event", trap.kind, exc_info=True)
            return
        if record is not None:
            self._ring.push(event.raw, record)

    def _run(self) -> None:
        assert self.engine is not None
        try:
            while not self._stopping.is_set():
                self.engine.poll(POLL_INTERVAL)
        except BaseException as exc:
            self.error = exc
            log.debug("gdbstub engine stopped", exc_info=True)
        finally:
            self._teardown()
            if self._ring is not None and self._ring.notify_fd is not None:
                os.eventfd_write(self._ring.notify_fd, 1)  # wake the event loop

    def _teardown(self) -> None:
        """Give the guest back ourselves if we can still reach it; otherwise leave that to
        the guard (before the stub is closed, so that it can connect). Then release all."""
        gave_back = self._client is None  # never connected: nothing was changed
        try:
            if self._client is not None and self.engine is not None and self.error is None:
                self.engine.disarm()
                self._client.detach()
                gave_back = True
        except NitroError as exc:
            self.error = exc
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None
            if gave_back:
                if self._session is not None:
                    try:
                        self._session.stop()
                    except NitroError as exc:
                        log.debug("closing the gdbstub: %s", exc)
                if self._guard is not None:
                    self._guard.finish()
            elif self._guard is not None:
                self._guard.abandon()  # the guard restores the guest and closes the stub
            self._session = None
            self._guard = None
            if self._introspection is not None:
                self._introspection.close()
                self._introspection = None
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
