"""The gdbstub backend: Nitro tracing of a running domain on a stock host.

:meth:`GdbstubBackend.start` takes the domain's trace lock, starts QEMU's gdbstub on a
private socket, starts the guard, connects (the guest stops), plans and arms the trap engine
(the guard learns the plan first) and resumes the guest; a thread then runs the engine,
pushing every event into the tracer's ring. :meth:`GdbstubBackend.stop` disarms, detaches,
closes the stub and dismisses the guard.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ..abi.event import fill_from_trap
from ..abi.ring import Ring
from ..domain.qemu import QemuProcess
from ..errors import NitroError
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


class GdbstubBackend:
    """Traces the domain *dom* (resolved to *process*) through QEMU's gdbstub.

    After a failure in the engine thread, :attr:`error` holds it and :attr:`running` is
    False; the tracer's ring fd is signalled so that an event loop wakes up to see it.
    """

    name = "gdbstub"

    def __init__(self, dom: Any, process: QemuProcess, uri: str, annotator: Any = None):
        self.dom = dom
        #: Called at each trap, vCPU stopped (:class:`~libvirt_nitro.annotate.Annotator`).
        self.annotator = annotator
        self._annotations: dict[int, Any] = {}
        #: Traps whose annotation raised (the event was queued raw).
        self.annotation_failures = 0
        self.process = process
        self.uri = uri
        self.error: BaseException | None = None
        self.engine: NitroEngine | None = None
        self._ring: Ring | None = None
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

    @property
    def packets_sent(self) -> int:
        """RSP packets sent to the stub so far (0 once detached), for benchmarks."""
        client = self._client
        return client.packets_sent if client is not None else 0

    def start(self, ring: Ring) -> None:
        """Arm the guest and start tracing into *ring*; returns once the guest runs armed.

        :raises AlreadyTraced: another tracer holds the domain.
        :raises NitroError: the stub, the guest kernel or the arming failed (nothing is
            left changed in the guest).
        """
        self._ring = ring
        name, uuid = self.process.name, self.process.uuid
        self._lock_fd = acquire_trace_lock(uuid, name)
        try:
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
        assert self._ring is not None
        annotation = None
        if self.annotator is not None:
            try:
                annotation = self.annotator.annotate(trap)
            except Exception:  # a decoding bug must not stop tracing: the raw event goes on
                self.annotation_failures += 1
                log.debug("annotating a %s event failed", trap.kind, exc_info=True)
            else:
                if annotation is None:
                    return  # filtered out

        def fill(ev: Any) -> None:
            fill_from_trap(ev, trap)
            if annotation is not None:
                self._annotations[ev.seq] = annotation

        self._ring.produce(fill)

    def take_annotation(self, seq: int) -> Any:
        """The annotation of event *seq* (once), or None."""
        return self._annotations.pop(seq, None)

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
            if self.annotator is not None:
                self.annotator.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
