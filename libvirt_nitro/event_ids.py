"""Event ids of :meth:`Tracer.eventRegisterAny <libvirt_nitro.tracer.Tracer.eventRegisterAny>`.

Kept apart from :mod:`libvirt_nitro.tracer` so that they import without the cffi
extension.
"""

from __future__ import annotations

__all__ = ["EVENT_ID_SYSCALL", "EVENT_ID_LOST", "EVENT_ID_LAST"]

#: ``callback(conn, dom, event: Event, opaque)`` for every trapped instruction
#: (entries and returns: ``event.direction``/``event.type`` tell which).
EVENT_ID_SYSCALL = 0
#: ``callback(conn, dom, lost: int, opaque)`` when the ring overflowed and *lost*
#: events were dropped since the previous report.
EVENT_ID_LOST = 1
#: One past the highest event id.
EVENT_ID_LAST = 2
