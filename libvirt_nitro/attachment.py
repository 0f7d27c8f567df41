"""``attach(dom)``: the one call that turns a running libvirt domain into a :class:`Tracer`."""

from __future__ import annotations

from typing import Any

from .domain import resolve
from .errors import DomainNotRunning
from .tracer import Tracer

__all__ = ["attach", "BACKENDS"]

#: Backend names accepted by :func:`attach`. The kernel backend (the Nitro KVM extension in
#: kernel/) is not wired in yet; "gdbstub" works on any stock QEMU (TCG or KVM).
BACKENDS = ("gdbstub",)


def attach(dom: Any, backend: str = "gdbstub", slot_count: int = 4096) -> Tracer:
    """Resolve *dom* (a running ``virDomain``), arm the traps and return its :class:`Tracer`.

    Events flow once callbacks are registered with :meth:`Tracer.eventRegisterAny` and
    libvirt's event loop runs. ``tracer.close()`` gives the guest back untraced.

    :raises DomainNotRunning: the domain is not running, or paused.
    :raises NitroError: see :func:`~libvirt_nitro.domain.resolve` and the backend
        (:class:`~libvirt_nitro.errors.AlreadyTraced`, a gdbstub failure, an unknown kernel).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    from .gdbstub.backend import GdbstubBackend

    process = resolve(dom, kvm_fds=False)
    if dom.state()[0] == 3:  # VIR_DOMAIN_PAUSED: tracing would resume it behind the user's back
        raise DomainNotRunning(f"domain {dom.name()!r} is paused: resume it before tracing")
    conn = dom.connect()
    tracer = Tracer(
        conn, dom, backend=GdbstubBackend(dom, process, conn.getURI()), slot_count=slot_count
    )
    try:
        tracer.start()
    except BaseException:
        tracer.close()
        raise
    return tracer
