"""The backend interface: what the tracer asks of a way of trapping a guest's system calls.

A backend arms the traps of one guest and fills a ring with ABI events
(:class:`~libvirt_nitro.abi.ring.Ring` of ``struct kvm_nitro_event``). Two implement it: the
gdbstub backend (:mod:`libvirt_nitro.gdbstub.backend`, any stock QEMU) and the kernel
backend (:mod:`libvirt_nitro.nitrokvm.backend`, the Nitro KVM extension). A new backend
implements this class and nothing else: :func:`libvirt_nitro.attachment.attach_backend`
builds the :class:`~libvirt_nitro.tracer.Tracer` over it, the pipeline and the formatters
are shared.

The life of a backend: :meth:`Backend.open` (the ring it fills; nothing armed yet),
:meth:`Backend.start` (armed on return), then events until :meth:`Backend.stop` or an error
of its own (:attr:`Backend.running` turns False, :attr:`Backend.error` says why).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .abi.ring import Ring
    from .pipeline import Pipeline

__all__ = ["Backend"]


class Backend(ABC):
    """One way of trapping the system calls of one guest."""

    #: What the user calls it (``--backend NAME``).
    name: ClassVar[str]
    #: The :class:`~libvirt_nitro.pipeline.Filter` fields the backend applies in place,
    #: before an event is queued (it gets :meth:`Filter.only` of them at :meth:`start`).
    in_place_filters: ClassVar[frozenset[str]] = frozenset()
    #: True when the backend runs the pipeline itself at each trap, while the vCPU waits,
    #: with the guest task and memory (each event arrives with its record); False when the
    #: tracer runs it as it drains the ring, with registers only.
    decodes_at_trap: ClassVar[bool] = False
    #: True when the backend can tell which guest task trapped (``-p``/``--comm`` work).
    knows_tasks: ClassVar[bool] = False

    #: Why tracing ended on its own (the guest or its VMM went away...), else None.
    error: BaseException | None = None

    @abstractmethod
    def open(self, slot_count: int) -> Ring:
        """The ring the backend fills (*slot_count* slots, a power of two); nothing is
        armed yet.

        :raises NitroError: the guest cannot be traced this way (the message says why).
        """

    @abstractmethod
    def start(self, ring: Ring, pipeline: Pipeline) -> None:
        """Arm the traps; events flow into *ring* (the one :meth:`open` gave) once this
        returns. *pipeline* is the tracer's: its filter's in-place part is applied here, and
        a backend that :attr:`decodes_at_trap` runs it.

        :raises NitroError: arming failed; the guest is left as it was.
        """

    @abstractmethod
    def stop(self) -> None:
        """Disarm and give the guest back untraced; idempotent. The ring keeps the events
        it holds."""

    @property
    @abstractmethod
    def running(self) -> bool:
        """True while the guest is traced."""

    def counters(self) -> dict[str, int]:
        """Figures the backend keeps (``{"packets_sent": 1204}``), for summaries and benches."""
        return {}

    def notes(self) -> list[str]:
        """What the user should know about this trace (one line each): what is not shown,
        and why."""
        return []

    def delivered(self, events: list[Any]) -> None:  # noqa: B027 - asynchronous: nothing
        """The tracer drained *events* (ABI :class:`~libvirt_nitro.abi.event.Event`, in
        ring order, those its filter dropped included) and the callbacks have seen them: a
        backend with synchronous delivery lets their vCPUs run on here."""

    def rebind(self, dom: Any) -> None:  # noqa: B027 - most backends need nothing
        """Use *dom*, a new ``virDomain`` of the same domain, from now on (after a libvirt
        reconnection)."""
