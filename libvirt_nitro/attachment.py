"""``attach(dom)``: the one call that turns a running libvirt domain into a :class:`Tracer`."""

from __future__ import annotations

from typing import Any

from .annotate import Annotator, Filters
from .domain import resolve
from .errors import DomainNotRunning
from .introspect import GuestIntrospection
from .tracer import Tracer

__all__ = ["attach", "BACKENDS"]

#: Backend names accepted by :func:`attach`. The kernel backend (the Nitro KVM extension in
#: kernel/) is not wired in yet; "gdbstub" works on any stock QEMU (TCG or KVM).
BACKENDS = ("gdbstub",)


def attach(
    dom: Any,
    backend: str = "gdbstub",
    slot_count: int = 4096,
    *,
    decode: bool = True,
    filters: Filters | None = None,
    decode_options: Any = None,
    kernel_image: str | None = None,
) -> Tracer:
    """Resolve *dom* (a running ``virDomain``), arm the traps and return its :class:`Tracer`.

    Events flow once callbacks are registered with :meth:`Tracer.eventRegisterAny` and
    libvirt's event loop runs. ``tracer.close()`` gives the guest back untraced.

    With *decode* (the default) each event carries an ``annotation`` made at trap time: the
    guest task (pid, tid, comm — needs the guest kernel image, by default the domain's
    directly booted kernel, or *kernel_image*) and the arguments decoded as strace does
    (*decode_options*); *filters* drop calls before they are queued.

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
    annotator = None
    if decode:
        introspection = GuestIntrospection.for_domain(dom, process, kernel_image)
        annotator = Annotator(introspection, filters, decode_options)
    conn = dom.connect()
    tracer = Tracer(
        conn,
        dom,
        backend=GdbstubBackend(dom, process, conn.getURI(), annotator),
        slot_count=slot_count,
    )
    try:
        tracer.start()
    except BaseException:
        tracer.close()  # the backend has released everything, the annotator included
        raise
    return tracer
