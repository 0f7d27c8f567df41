"""``attach(dom)``: the one call that turns a running libvirt domain into a :class:`Tracer`;
:func:`attach_backend`, the one place a :class:`Tracer` is built over a backend."""

from __future__ import annotations

from typing import Any

from .backend import Backend
from .domain import resolve
from .errors import DomainNotRunning, NitroError, NoKvmFds
from .pipeline import Filter, Pipeline
from .strace import DecodeOptions
from .tracer import Tracer

__all__ = ["attach", "attach_backend", "BACKENDS", "choose_backend"]

#: Backend names accepted by :func:`attach`: "gdbstub" works on any stock QEMU (TCG or
#: KVM), "kernel" needs the Nitro KVM extension (kernel/) and a KVM domain, "auto" takes
#: the kernel backend when it can serve the request, else the gdbstub.
BACKENDS = ("gdbstub", "kernel", "auto")


def choose_backend(backend: str, process: Any, filter: Filter | None = None) -> str:
    """The backend that :func:`attach` uses for *backend* (one of :data:`BACKENDS`) on the
    domain resolved to *process*: "gdbstub" or "kernel".

    "auto" is "kernel" when ``/dev/kvm`` has the Nitro extension, the domain runs under
    KVM (a TCG domain has no KVM VM to trap) and *filter* selects nothing (the kernel
    backend does not decode, so a filtered trace goes to the backend that does);
    otherwise "gdbstub".

    :raises NoNitroKvm: "kernel" without the extension (checked first: nothing is touched).
    :raises NoKvmFds: "kernel" on a TCG domain.
    :raises NitroError: "kernel" with a filter by process (``-p``, ``--comm``): the kernel
        backend does not know guest tasks.
    """
    from .nitrokvm import KernelBackend, nitro_abi_version, require_nitro

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    filter = filter or Filter()
    if backend == "auto":
        usable = process.accel == "kvm" and filter.empty and nitro_abi_version() > 0
        return "kernel" if usable else "gdbstub"
    if backend == "kernel":
        require_nitro()
        if process.accel != "kvm":
            raise NoKvmFds(
                f"domain {process.name!r} runs under {process.accel}: the kernel backend needs "
                "a KVM domain; use --backend gdbstub"
            )
        if filter.needs_task and not KernelBackend.knows_tasks:
            raise NitroError(
                "the kernel backend does not know guest processes: -p/--comm (or "
                "<nitro:process pid|comm>) need --backend gdbstub"
            )
    return backend


def attach(
    dom: Any,
    backend: str = "auto",
    slot_count: int = 4096,
    *,
    decode: bool = True,
    filter: Filter | None = None,
    capture_bytes: int = 32,
    kernel_image: str | None = None,
    delivery: str = "async",
) -> Tracer:
    """Resolve *dom* (a running ``virDomain``), arm the traps and return its :class:`Tracer`.

    Events flow once callbacks are registered with :meth:`Tracer.eventRegisterAny` and
    libvirt's event loop runs. ``tracer.close()`` gives the guest back untraced.

    *backend* is one of :data:`BACKENDS` (see :func:`choose_backend`); ``tracer.backend.name``
    says which one traces. Each event reaches the callbacks with its ``record``
    (:class:`~libvirt_nitro.pipeline.SyscallRecord`): the call, paired entry and exit,
    and *filter*'s choice applied. With *decode* (the default) and a backend that reads guest
    memory at the trap (the gdbstub), the record names the guest task (needs the guest
    kernel image: by default the domain's directly booted kernel, or *kernel_image*) and
    holds the arguments decoded as strace does, reading at most *capture_bytes* of each
    string or buffer. The kernel backend's records carry registers only (its notes say so).
    *delivery* ``"sync"`` (kernel backend only) makes each trapped vCPU wait until the
    callbacks have seen its event: nothing lost, the guest at the consumer's pace.

    :raises DomainNotRunning: the domain is not running, or paused.
    :raises NoNitroKvm: backend "kernel" on a kernel without the Nitro extension.
    :raises NitroError: see :func:`~libvirt_nitro.domain.resolve` and the backend
        (:class:`~libvirt_nitro.errors.AlreadyTraced`, a gdbstub failure, an unknown kernel).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if delivery not in ("async", "sync"):
        raise ValueError(f"delivery must be 'async' or 'sync', not {delivery!r}")
    process = resolve(dom, kvm_fds=False)
    if dom.state()[0] == 3:  # VIR_DOMAIN_PAUSED: tracing would resume it behind the user's back
        raise DomainNotRunning(f"domain {dom.name()!r} is paused: resume it before tracing")
    conn = dom.connect()
    chosen: Backend
    if choose_backend(backend, process, filter) == "kernel":
        from .nitrokvm import KernelBackend

        chosen = KernelBackend.for_domain(process, delivery=delivery)
    elif delivery == "sync":
        raise NitroError(
            "synchronous delivery needs the kernel backend (the gdbstub backend queues "
            "events for the callbacks while the guest runs on)"
        )
    else:
        from .gdbstub.backend import GdbstubBackend

        chosen = GdbstubBackend(dom, process, conn.getURI(), kernel_image)
    pipeline = Pipeline(
        filter,
        decode=decode and chosen.decodes_at_trap,
        options=DecodeOptions(capture_bytes=capture_bytes),
    )
    return attach_backend(chosen, conn=conn, dom=dom, pipeline=pipeline, slot_count=slot_count)


def attach_backend(
    backend: Backend,
    *,
    conn: Any = None,
    dom: Any = None,
    pipeline: Pipeline | None = None,
    slot_count: int = 4096,
) -> Tracer:
    """A started :class:`Tracer` over *backend* (armed on return): its ring, *pipeline*
    (by default: pair and deliver, nothing decoded or filtered), *conn* and *dom* for the
    callbacks. Everything is released if arming fails.

    :raises NitroError: the backend could not open or arm.
    """
    ring = backend.open(slot_count)
    tracer = Tracer(
        conn,
        dom,
        backend=backend,
        ring=ring,
        pipeline=pipeline if pipeline is not None else Pipeline(decode=False),
    )
    try:
        tracer.start()
    except BaseException:
        tracer.close()
        backend.stop()  # stop() is idempotent; the tracer only stops a started backend
        raise
    return tracer
