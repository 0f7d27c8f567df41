"""``attach(dom)``: the one call that turns a running libvirt domain into a :class:`Tracer`."""

from __future__ import annotations

from typing import Any

from .annotate import Annotator, Filters
from .domain import resolve
from .errors import DomainNotRunning, NitroError, NoKvmFds
from .introspect import GuestIntrospection
from .tracer import Tracer

__all__ = ["attach", "BACKENDS", "choose_backend"]

#: Backend names accepted by :func:`attach`: "gdbstub" works on any stock QEMU (TCG or
#: KVM), "kernel" needs the Nitro KVM extension (kernel/) and a KVM domain, "auto" takes
#: the kernel backend when it can serve the request, else the gdbstub.
BACKENDS = ("gdbstub", "kernel", "auto")


def choose_backend(backend: str, process: Any, filters: Filters | None = None) -> str:
    """The backend that :func:`attach` uses for *backend* (one of :data:`BACKENDS`) on the
    domain resolved to *process*: "gdbstub" or "kernel".

    "auto" is "kernel" when ``/dev/kvm`` has the Nitro extension, the domain runs under
    KVM (a TCG domain has no KVM VM to trap) and *filters* select nothing (the kernel
    backend does not know guest processes, nor pair exits with entries to filter them);
    otherwise "gdbstub".

    :raises NoNitroKvm: "kernel" without the extension (checked first: nothing is touched).
    :raises NoKvmFds: "kernel" on a TCG domain.
    :raises NitroError: "kernel" with *filters*.
    """
    from .nitrokvm import nitro_abi_version, require_nitro

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    filtered = filters is not None and (
        filters.syscalls is not None or filters.pids is not None or filters.comms is not None
    )
    if backend == "auto":
        usable = process.accel == "kvm" and not filtered and nitro_abi_version() > 0
        return "kernel" if usable else "gdbstub"
    if backend == "kernel":
        require_nitro()
        if process.accel != "kvm":
            raise NoKvmFds(
                f"domain {process.name!r} runs under {process.accel}: the kernel backend needs "
                "a KVM domain; use --backend gdbstub"
            )
        if filtered:
            raise NitroError(
                "the kernel backend does not filter by system call, process or command "
                "(-e, -p, --comm) yet: use --backend gdbstub"
            )
    return backend


def attach(
    dom: Any,
    backend: str = "auto",
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

    *backend* is one of :data:`BACKENDS` (see :func:`choose_backend`); ``tracer.backend.name``
    says which one traces.

    With *decode* (the default) each gdbstub event carries an ``annotation`` made at trap
    time: the guest task (pid, tid, comm — needs the guest kernel image, by default the
    domain's directly booted kernel, or *kernel_image*) and the arguments decoded as strace
    does (*decode_options*); *filters* drop calls before they are queued. Kernel backend
    events are built in the kernel and carry registers only (``annotation`` is None, the
    backend's ``note`` says so), whatever *decode* says.

    :raises DomainNotRunning: the domain is not running, or paused.
    :raises NoNitroKvm: backend "kernel" on a kernel without the Nitro extension.
    :raises NitroError: see :func:`~libvirt_nitro.domain.resolve` and the backend
        (:class:`~libvirt_nitro.errors.AlreadyTraced`, a gdbstub failure, an unknown kernel).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    process = resolve(dom, kvm_fds=False)
    if dom.state()[0] == 3:  # VIR_DOMAIN_PAUSED: tracing would resume it behind the user's back
        raise DomainNotRunning(f"domain {dom.name()!r} is paused: resume it before tracing")
    conn = dom.connect()
    if choose_backend(backend, process, filters) == "kernel":
        from .nitrokvm import KernelBackend

        kernel = KernelBackend.for_domain(dom, process, slot_count=slot_count)
        return kernel.open_tracer(conn, dom)
    from .gdbstub.backend import GdbstubBackend

    annotator = None
    if decode:
        introspection = GuestIntrospection.for_domain(dom, process, kernel_image)
        annotator = Annotator(introspection, filters, decode_options)
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
