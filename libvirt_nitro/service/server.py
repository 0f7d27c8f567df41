"""Service mode: ``libvirt-nitro serve UUID`` traces one domain for as long as its
``<nitro:trace>`` element says.

Started detached by the hook (:mod:`.hook`, domain ``started``) or by the watcher
(:mod:`.watch`, element added to a running domain), or by hand. It

- waits for the hook that spawned it to return (``--hook-pid``): libvirtd holds the domain
  while the hook runs, so calling libvirt earlier would deadlock;
- takes ``SERVE_DIR/UUID.pid`` (one server per domain; a second one exits at once);
- reads the element from the running domain (``virDomainGetMetadata``, live) and attaches,
  retrying while the guest kernel is not up yet (a domain traced "from its start" is
  attached as soon as the guest has SYSCALL enabled on every vCPU);
- writes JSON lines (or text) through :class:`~libvirt_nitro.output.Printer` to the
  configured file, rotated by size (:class:`RotatingWriter`);
- logs to stderr with ``<N>`` syslog priority prefixes (journald's SyslogLevelPrefix);
- survives a libvirtd restart: the gdbstub connection does not go through libvirtd, so
  tracing goes on while a close callback and a retry loop reconnect to libvirt;
- stops, giving the guest back, when the element is removed (metadata-change event), on
  SIGTERM/SIGINT/SIGHUP, after ``max-events``, or when the guest shuts down; when the domain
  has stopped (lifecycle event, or SIGUSR1 from the hook) it writes what the ring holds and
  exits at once, leaving the stub's remains to the guard; a changed element re-attaches
  with the new configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import time
from typing import Any

from ..errors import AlreadyTraced, InvalidTraceConfig, NitroError, NoKvmFds, NoNitroKvm
from ..fleet.verbs import sink_printer
from ..output import Printer, formatter_for
from .journal import setup_logging
from .metadata import NAMESPACE, TraceConfig, parse_text
from .process import wait_for_exit
from .rotation import RotatingWriter
from .status import PidLock, remove_state, write_state

__all__ = ["Server", "run", "ATTACH_RETRY", "RECONNECT_RETRY", "KEEPALIVE"]

log = logging.getLogger("libvirt_nitro.service")

#: Seconds between two attempts to attach while the guest kernel is not up yet.
ATTACH_RETRY = 2.0
#: Seconds between two attempts to reconnect to libvirt.
RECONNECT_RETRY = 1.0
#: How often the loop wakes up to look at flags and rewrite the state file (ms).
TICK_MS = 250
#: libvirt keepalive: a probe every 5 s, the connection declared dead after 3 missed.
KEEPALIVE = (5, 3)


class _DomainGone(BaseException):
    """Raised by the SIGUSR1 handler to cut short a teardown that waits on a dead QEMU."""


class Server:
    """The service process of one domain (see the module docstring)."""

    def __init__(self, uuid: str, uri: str, attach_timeout: float = 600.0):
        from ..domain import libvirt_module

        self.libvirt = libvirt_module()
        self.uuid = uuid
        self.uri = uri
        self.attach_timeout = attach_timeout
        self.conn: Any = None
        self.dom: Any = None
        self.name = uuid
        self.config: TraceConfig | None = None
        self.tracer: Any = None
        self.printer: Any = None
        #: The NATS sink of ``<nitro:nats>`` (None without it).
        self.sink: Any = None
        self.writer: RotatingWriter | None = None
        self.dropped = 0
        #: Events the NATS sinks already closed dropped (spool full).
        self.sink_dropped = 0
        self.events = 0
        #: Decoder failures of the tracers already detached (arguments printed in hex).
        self.not_decoded = 0
        self.reconnects = 0
        self.state = "starting"
        self._previous_state = "starting"
        self.stop_reason: str | None = None
        #: The domain's QEMU is gone: nothing to give back (the guard tidies up).
        self.domain_gone = False
        self._tearing_down = False
        self.exit_status = 0
        self._lost_connection = False
        self._metadata_changed = False
        self._callbacks: list[int] = []
        self._next_attach = 0.0
        self._next_reconnect = 0.0
        self._next_state = 0.0
        self._attach_deadline = 0.0
        self._waiting_logged = False

    # ------------------------------------------------------------ libvirt
    def connect(self) -> bool:
        """Open the connection, find the domain, register the events; False if libvirt
        does not answer. Sets :attr:`stop_reason` if the domain is gone or inactive."""
        libvirt = self.libvirt
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            log.debug("libvirt not reachable: %s", exc)
            return False
        try:
            dom = conn.lookupByUUIDString(self.uuid)
            active = dom.isActive()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                self.stop("the domain is gone")
                return True
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
            return False
        if not active:
            self.stop("the domain is not running")
            return True
        self.conn, self.dom, self.name = conn, dom, dom.name()
        conn.registerCloseCallback(self._on_close, None)
        with contextlib.suppress(libvirt.libvirtError):
            conn.setKeepAlive(*KEEPALIVE)
        self._callbacks = [
            conn.domainEventRegisterAny(
                dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
            ),
            conn.domainEventRegisterAny(
                dom, libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, self._on_metadata, None
            ),
        ]
        if self.tracer is not None:
            self._rebind(self.tracer)
        return True

    def _rebind(self, tracer: Any) -> None:
        """Point the tracer and its backend at the new connection's domain object (the
        gdbstub is closed through it when tracing ends)."""
        tracer.conn, tracer.dom = self.conn, self.dom
        tracer.backend.rebind(self.dom)

    def _on_close(self, _conn: Any, reason: int, _opaque: Any) -> None:
        self._lost_connection = True

    def _on_lifecycle(self, _conn: Any, _dom: Any, event: int, detail: int, _opaque: Any) -> None:
        # SHUTDOWN is followed by STOPPED once QEMU is gone; a CRASHED domain that libvirt
        # preserves still has a guest to give back.
        if event == self.libvirt.VIR_DOMAIN_EVENT_STOPPED:
            self.domain_gone = True
            self.stop("the domain stopped")
        elif event == self.libvirt.VIR_DOMAIN_EVENT_CRASHED:
            self.stop("the guest crashed")

    def _on_metadata(self, _conn: Any, _dom: Any, mtype: int, nsuri: str, _opaque: Any) -> None:
        if mtype == self.libvirt.VIR_DOMAIN_METADATA_ELEMENT and nsuri == NAMESPACE:
            self._metadata_changed = True

    def read_config(self) -> TraceConfig | None:
        """The live element's configuration; None if the element is absent.

        :raises InvalidTraceConfig: the element is invalid.
        """
        from .config import get_element

        text = get_element(self.dom, self.libvirt.VIR_DOMAIN_AFFECT_LIVE)
        return None if text is None else parse_text(text)

    # ------------------------------------------------------------ tracing
    def stop(self, reason: str) -> None:
        """Ask the loop to end (the first reason is kept)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def fail(self, reason: str) -> None:
        """Ask the loop to end because tracing failed: the exit status becomes 1."""
        self.exit_status = 1
        self.stop(reason)

    def _check_supported(self, config: TraceConfig) -> None:
        from ..attachment import BACKENDS

        if config.backend not in BACKENDS:
            raise NitroError(
                f"backend {config.backend!r} is not available (available: {', '.join(BACKENDS)})"
            )
        if config.mode == "sync" and config.backend != "kernel":
            raise NitroError(
                "mode='sync' (each trapped vCPU waits for the service) needs backend='kernel'"
            )

    def _try_attach(self) -> None:
        from ..attachment import attach
        from ..event_ids import EVENT_ID_LOST, EVENT_ID_SYSCALL

        assert self.config is not None
        now = time.monotonic()
        if now < self._next_attach:
            return
        self._next_attach = now + ATTACH_RETRY
        if self.config.nats_url and self.sink is None:
            self.sink = self._start_sink()  # before attaching: a bad <nitro:nats> touches nothing
        try:
            tracer = attach(
                self.dom,
                backend=self.config.backend,
                slot_count=self.config.ring_slots,
                decode=self.config.decode,
                filter=self.config.filter(),
                delivery=self.config.mode,
            )
        except (AlreadyTraced, NoNitroKvm, NoKvmFds):
            raise  # waiting does not change these
        except NitroError as exc:
            if now >= self._attach_deadline:
                raise NitroError(
                    f"could not attach within {self.attach_timeout:.0f} s: {exc}"
                ) from None
            if not self._waiting_logged:
                log.info("waiting for the guest to be traceable: %s", exc)
                self._waiting_logged = True
            self.state = "waiting"
            return
        output = self.config.output_for(self.name)
        self.writer = RotatingWriter(output, self.config.max_bytes, self.config.max_files)
        formatter = formatter_for(
            as_json=self.config.output_format == "json", decoded=tracer.pipeline.decode
        )
        self.printer = Printer(self.writer, formatter)
        if self.sink is not None:
            self.printer = sink_printer(self.sink, self.printer, tracer.pipeline.decode, 32)
        tracer.eventRegisterAny(EVENT_ID_SYSCALL, self._on_event, None)
        tracer.eventRegisterAny(EVENT_ID_LOST, self._on_lost, None)
        self.tracer = tracer
        self.state = "tracing"
        self._waiting_logged = False
        log.info(
            "tracing %s (backend %s) into %s",
            self.name,
            self.config.backend,
            output,
        )

    def _start_sink(self) -> Any:
        """The NATS sink of ``<nitro:nats>``; a broker that is away at start is waited for
        (events spooled meanwhile)."""
        from ..fleet.sink import DEFAULT_SPOOL_DIR, NatsSink, spool_dir_for
        from ..fleet.target import load_credentials, parse_url

        assert self.config is not None
        sink = NatsSink(
            parse_url(self.config.nats_url or ""),
            load_credentials(self.config.nats_credentials),
            domain_name=self.name,
            domain_uuid=self.uuid,
            spool_dir=spool_dir_for(self.config.nats_spool or DEFAULT_SPOOL_DIR, self.uuid),
            spool_max_bytes=self.config.nats_spool_max_bytes,
        )
        sink.start(require_broker=False)
        log.info("publishing to %s (state %s)", self.config.nats_url, sink.state)
        return sink

    def _on_event(self, _conn: Any, _dom: Any, event: Any, _opaque: Any) -> None:
        assert self.printer is not None and self.config is not None
        before = self.printer.printed
        self.printer.write(event)
        self.events += self.printer.printed - before
        if self.config.max_events is not None and self.events >= self.config.max_events:
            self.stop(f"max-events={self.config.max_events} reached")

    def _on_lost(self, _conn: Any, _dom: Any, count: int, _opaque: Any) -> None:
        self.dropped += count
        log.warning("%d events dropped (ring full)", count)

    def _detach(self) -> None:
        """Give the guest back and close the output; idempotent.

        When the domain is gone (or goes while this runs: SIGUSR1 interrupts it), the events
        still in the ring are written and the backend is left to the guard, which finds no
        stub and ends: tearing it down would wait on a dead QEMU and on libvirtd, busy with
        the domain's stop hooks.
        """
        tracer, self.tracer = self.tracer, None
        try:
            if tracer is None:
                return
            if self.domain_gone:
                tracer.dispatch()
                return
            self._tearing_down = True
            try:
                tracer.stop()
                tracer.dispatch()
                tracer.close()
            except _DomainGone:
                tracer.dispatch()
                return
            except Exception as exc:  # libvirt gone: the guard closes the stub instead
                log.error("closing the tracer: %s", exc)
                self.exit_status = 1
            finally:
                self._tearing_down = False
            if tracer.error is not None:
                self.fail(f"tracing failed: {tracer.error}")
        finally:
            if tracer is not None:
                self.not_decoded += sum(tracer.summary()["not_decoded"].values())
            if self.writer is not None:
                self.writer.close()
                self.writer = None
            if self.sink is not None:
                self.sink.close()
                self.sink_dropped += self.sink.dropped
                self.sink = None

    def _on_domain_gone_signal(self, _signum: int, _frame: Any) -> None:
        """SIGUSR1, from the hook's ``stopped``: the domain's QEMU is gone."""
        self.domain_gone = True
        self.stop("the domain stopped")
        if self._tearing_down:
            raise _DomainGone

    # ------------------------------------------------------------ the loop
    def _tick(self, _timer: int, _opaque: Any) -> None:
        """Wake the loop; the work is done in :meth:`_step`."""

    def _step(self) -> None:
        now = time.monotonic()
        if self._lost_connection and now >= self._next_reconnect:
            self._next_reconnect = now + RECONNECT_RETRY
            if self.state != "reconnecting":
                log.warning("lost the libvirt connection; reconnecting (tracing goes on)")
                self._previous_state, self.state = self.state, "reconnecting"
                self.conn = None
            if self.connect():
                self._lost_connection = False
                self.reconnects += 1
                self.state = self._previous_state
                self._metadata_changed = True  # it may have changed while we were away
                log.info("reconnected to libvirt")
        if self._metadata_changed and not self._lost_connection and self.stop_reason is None:
            self._metadata_changed = False
            self._reload()
        if self.tracer is not None and not self.tracer.running:
            error = self.tracer.error
            self.fail(f"tracing failed: {error}" if error else "the tracer stopped")
        if self.tracer is None and self.stop_reason is None and not self._lost_connection:
            self._try_attach()
        if now >= self._next_state:
            self._next_state = now + 1.0
            self.write_state()

    def _reload(self) -> None:
        try:
            config = self.read_config()
        except InvalidTraceConfig as exc:
            log.error("the changed <nitro:trace> element is invalid, kept the old one: %s", exc)
            return
        except NitroError as exc:
            log.warning("re-reading the element: %s", exc)
            return
        if config is None:
            self.stop("the <nitro:trace> element was removed")
        elif config != self.config:
            log.info("the <nitro:trace> element changed: re-attaching")
            self._detach()
            self.config = config
            self._next_attach = 0.0
            self._attach_deadline = time.monotonic() + self.attach_timeout

    def _not_decoded_now(self) -> int:
        if self.tracer is None:
            return 0
        return sum(self.tracer.summary()["not_decoded"].values())

    def write_state(self) -> None:
        """Rewrite ``SERVE_DIR/UUID.json`` (what ``status`` shows)."""
        config = self.config
        sink_dropped = self.sink_dropped + (self.sink.dropped if self.sink is not None else 0)
        write_state(
            self.uuid,
            {
                "uuid": self.uuid,
                "name": self.name,
                "state": self.state,
                "backend": config.backend if config else None,
                "events": self.events,
                "not_decoded": self.not_decoded + self._not_decoded_now(),
                "dropped": self.dropped + sink_dropped,
                "output": config.output_for(self.name) if config else None,
                "nats": self.sink.summary() if self.sink is not None else None,
                "reconnects": self.reconnects,
            },
        )

    def run(self, hook_pid: int | None = None, connect_timeout: float = 60.0) -> int:
        """Serve until a stop reason; return the exit status (0, or 1 after an error)."""
        libvirt = self.libvirt
        if hook_pid is not None and not wait_for_exit(hook_pid, 120.0):
            log.warning("the hook (pid %d) has not returned after 120 s; going on", hook_pid)
        lock = PidLock(self.uuid)
        if not lock.acquire():
            log.info("domain %s is already served by another process", self.uuid)
            return 0
        libvirt.virEventRegisterDefaultImpl()
        stop_signals: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, _frame: stop_signals.append(signum))
        signal.signal(signal.SIGUSR1, self._on_domain_gone_signal)
        timer = -1
        try:
            deadline = time.monotonic() + connect_timeout
            while not self.connect():
                if time.monotonic() >= deadline:
                    raise NitroError(f"libvirt at {self.uri} did not answer in {connect_timeout} s")
                time.sleep(RECONNECT_RETRY)
            if self.stop_reason is not None:  # no such domain, or not running
                raise NitroError(f"{self.stop_reason}: nothing to trace")
            self.config = self.read_config()
            if self.config is None:
                log.info("domain %s has no <nitro:trace> element: nothing to trace", self.name)
                return 0
            self._check_supported(self.config)
            self._attach_deadline = time.monotonic() + self.attach_timeout
            self.write_state()
            timer = libvirt.virEventAddTimeout(TICK_MS, self._tick, None)
            while self.stop_reason is None:
                if stop_signals:
                    self.stop(signal.Signals(stop_signals[0]).name)
                    break
                self._step()
                if self.stop_reason is None:
                    libvirt.virEventRunDefaultImpl()
            log.info("stopping: %s", self.stop_reason)
        except NitroError as exc:
            log.error("%s: %s", self.name, exc)
            self.exit_status = 1
        finally:
            self.state = "stopping"
            try:
                self._detach()
            finally:
                if timer >= 0:
                    libvirt.virEventRemoveTimeout(timer)
                log.info(
                    "%s: %d events written, %d dropped, %d arguments not decoded",
                    self.name,
                    self.events,
                    self.dropped + self.sink_dropped,
                    self.not_decoded,
                )
                remove_state(self.uuid)
                lock.release()
                if self.conn is not None:
                    with contextlib.suppress(libvirt.libvirtError):
                        self.conn.close()
        return self.exit_status


def run(args: argparse.Namespace) -> int:
    """``serve UUID``: the service process (see the module docstring)."""
    setup_logging(f"libvirt-nitro serve {args.uuid}")
    uri = args.connect or "qemu:///system"
    server = Server(args.uuid, uri, attach_timeout=args.attach_timeout)
    return server.run(hook_pid=args.hook_pid)
