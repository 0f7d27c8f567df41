"""Deliver Nitro events to callbacks on libvirt's event loop, like domain events.

A :class:`Tracer` owns an event :class:`~libvirt_nitro.abi.ring.Ring` that a *backend*
(:class:`~libvirt_nitro.backend.Backend`: the kernel extension, the gdbstub engine, or a test
VM) fills, the :class:`~libvirt_nitro.pipeline.Pipeline` that makes each event's record, and
an eventfd the ring signals when it goes non-empty.  The eventfd is registered with
``libvirt.virEventAddHandle``; its handler drains the ring and calls every
callback registered with :meth:`Tracer.eventRegisterAny` as
``callback(conn, dom, event, opaque)``, so callbacks run on whatever thread runs
``libvirt.virEventRunDefaultImpl()`` (or the loop given to ``virEventRegisterImpl``),
exactly as libvirt's own domain events do.  Deregistration during a dispatch takes
effect at once but the entry is freed after the dispatch (libvirt-python's habit).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .abi.event import Event
from .abi.ring import Ring
from .errors import NitroError, NoEventLoop
from .event_ids import EVENT_ID_LAST, EVENT_ID_LOST, EVENT_ID_SYSCALL

if TYPE_CHECKING:
    from .backend import Backend
    from .pipeline import Pipeline

__all__ = [
    "EVENT_ID_SYSCALL",
    "EVENT_ID_LOST",
    "EVENT_ID_LAST",
    "Tracer",
    "EventCallback",
]

log = logging.getLogger(__name__)

EventCallback = Callable[[Any, Any, Any, Any], None]
_Entry = tuple[int, EventCallback, Any]


class Tracer:
    """Events of one traced VM, delivered through libvirt's event loop.

    *conn* and *dom* are what callbacks receive as their first two arguments (a
    ``virConnect`` and ``virDomain``, or None).  *backend* is started by
    :meth:`start` and stopped by :meth:`close`; *ring* defaults to a new
    :class:`Ring` of *slot_count* slots.  With a *pipeline*, each event reaches the
    callbacks with its ``record`` (made at the trap by a backend that
    :attr:`~libvirt_nitro.backend.Backend.decodes_at_trap`, else here as the ring is
    drained), and events its filter drops do not reach them.  Build it with
    :func:`~libvirt_nitro.attachment.attach`.
    """

    def __init__(
        self,
        conn: Any = None,
        dom: Any = None,
        *,
        backend: Backend | None = None,
        ring: Ring | None = None,
        slot_count: int = 4096,
        pipeline: Pipeline | None = None,
    ) -> None:
        self.conn = conn
        self.dom = dom
        self.backend = backend
        self.pipeline = pipeline
        decodes_at_trap = backend is not None and backend.decodes_at_trap
        self._decoder = pipeline if pipeline is not None and not decodes_at_trap else None
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.ring = ring if ring is not None else Ring(slot_count)
        self.ring.notify_fd = self._efd
        self._lock = threading.Lock()
        self._callbacks: dict[int, _Entry] = {}
        self._dead: set[int] = set()
        self._next_id = 0
        self._watch: int | None = None
        self._dispatching = False
        self._started = False
        #: Events dropped by the ring since the tracer was created.
        self.lost = 0

    # ---------------------------------------------------------- registration
    def eventRegisterAny(self, eventID: int, cb: EventCallback, opaque: Any = None) -> int:  # noqa: N802,N803
        """Call *cb(conn, dom, event, opaque)* for each event of kind *eventID*
        (``EVENT_ID_*``); return an integer callback id for :meth:`eventDeregisterAny`.

        :raises NoEventLoop: no libvirt event loop implementation is registered
            (call ``libvirt.virEventRegisterDefaultImpl()`` first).
        :raises NitroError: unknown *eventID*, or the tracer is closed.
        """
        if not 0 <= eventID < EVENT_ID_LAST:
            raise NitroError(f"unknown Nitro event id {eventID}")
        if self._efd < 0:
            raise NitroError("the tracer is closed")
        self._ensure_watch()
        with self._lock:
            cid = self._next_id
            self._next_id += 1
            self._callbacks[cid] = (eventID, cb, opaque)
        return cid

    def eventDeregisterAny(self, callbackID: int) -> None:  # noqa: N802,N803
        """Stop calling the callback *callbackID*; freed after any dispatch in progress.

        :raises NitroError: no such callback id.
        """
        with self._lock:
            if callbackID not in self._callbacks or callbackID in self._dead:
                raise NitroError(f"no Nitro event callback with id {callbackID}")
            if self._dispatching:
                self._dead.add(callbackID)
            else:
                del self._callbacks[callbackID]

    def _ensure_watch(self) -> None:
        if self._watch is not None:
            return
        import libvirt

        try:
            self._watch = libvirt.virEventAddHandle(
                self._efd, libvirt.VIR_EVENT_HANDLE_READABLE, self._on_readable, None
            )
        except libvirt.libvirtError as exc:
            raise NoEventLoop(
                "no libvirt event loop implementation is registered: call "
                "libvirt.virEventRegisterDefaultImpl() (or virEventRegisterImpl) and run "
                f"the loop before registering Nitro event callbacks ({exc})"
            ) from exc

    # -------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the backend producing into the ring (once)."""
        if not self._started and self.backend is not None:
            self.backend.start(self.ring, self.pipeline)
        self._started = True

    @property
    def running(self) -> bool:
        """True while the backend traces the guest."""
        return self.backend is not None and self._started and self.backend.running

    @property
    def error(self) -> BaseException | None:
        """Why tracing ended on its own, else None."""
        return None if self.backend is None else self.backend.error

    def stop(self) -> None:
        """Give the guest back (stop the backend); the ring keeps what it holds, for a last
        :meth:`dispatch`. Idempotent."""
        if self.backend is not None and self._started:
            self.backend.stop()
        self._started = False

    def summary(self) -> dict[str, Any]:
        """The trace's figures: ``dropped`` (ring overflow), ``not_decoded`` (decoder
        failures by call name), and the backend's own counters."""
        failures = dict(self.pipeline.failures) if self.pipeline is not None else {}
        counters = self.backend.counters() if self.backend is not None else {}
        return {"dropped": self.ring.dropped, "not_decoded": failures, **counters}

    def notes(self) -> list[str]:
        """What the user should know about this trace (the backend's notes)."""
        return self.backend.notes() if self.backend is not None else []

    def close(self) -> None:
        """Stop the backend, remove the loop handle and close the eventfd; idempotent."""
        self.stop()
        if self._watch is not None:
            import libvirt

            try:
                libvirt.virEventRemoveHandle(self._watch)
            except libvirt.libvirtError:  # the loop impl may already be gone
                log.debug("virEventRemoveHandle(%d) failed", self._watch)
            self._watch = None
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- dispatch
    def _on_readable(self, watch: int, fd: int, events: int, opaque: Any) -> None:
        try:
            os.eventfd_read(fd)
        except BlockingIOError:
            pass
        self.dispatch()

    def dispatch(self, limit: int | None = None) -> int:
        """Drain the ring (up to *limit* events) into the callbacks; return the number of
        events drained.  Called by the loop handler; callable directly as well."""
        slots, lost = self.ring.drain_with_payloads(limit)
        with self._lock:
            self._dispatching = True
            active = list(self._callbacks.items())
        # parsed first: a synchronous backend lets every drained event's vCPU run on
        events = [Event(raw) for raw, _ in slots]
        try:
            if lost:
                self.lost += lost
                self._deliver(active, EVENT_ID_LOST, lost)
            for event, (_, record) in zip(events, slots, strict=True):
                if self._decoder is not None:
                    record = self._decoder.process(event)
                    if record is None:
                        continue  # the filter dropped it
                event.record = record
                self._deliver(active, EVENT_ID_SYSCALL, event)
        finally:
            with self._lock:
                self._dispatching = False
                for cid in self._dead:
                    self._callbacks.pop(cid, None)
                self._dead.clear()
            if events and self.backend is not None:
                self.backend.delivered(events)
        return len(slots)

    def _deliver(
        self, active: list[tuple[int, tuple[int, EventCallback, Any]]], eid: int, arg: Any
    ) -> None:
        for cid, (event_id, cb, opaque) in active:
            if event_id != eid or cid in self._dead:
                continue
            try:
                cb(self.conn, self.dom, arg, opaque)
            except Exception:  # a callback's bug must not stop the loop; it is logged
                log.exception("Nitro event callback %d raised", cid)
