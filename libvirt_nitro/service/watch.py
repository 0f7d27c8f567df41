"""``libvirt-nitro watch``: the host's watcher, which starts tracing when a ``<nitro:trace>``
element appears on a running domain.

Removing the element, or stopping the domain, is handled by the domain's own server
(:mod:`.serve` listens to both events); *adding* it to a running domain needs someone
listening to every domain: this one process per host (``SERVE_DIR/watch.pid``). It reacts to

- ``VIR_DOMAIN_EVENT_ID_METADATA_CHANGE`` (our namespace) on a running domain that has the
  element and no server: spawns ``serve UUID``;
- a domain ``started`` with the element and no server (a host where the hook is not
  installed, or the hook's server died);
- (re)connection to libvirt: the same check over every running domain, for what happened
  while libvirtd was away.

Started by the hook on any domain's ``started`` (so it runs whenever domains run) or by hand;
it exits when no domain has been running for :data:`IDLE_EXIT` seconds, on SIGTERM, or
SIGINT. Log lines on stderr with ``<N>`` priority prefixes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import time
from typing import Any

from ..errors import InvalidTraceConfig, NitroError
from .hook import LOG_DIR, service_command, spawn_detached
from .journal import setup_logging
from .metadata import NAMESPACE
from .process import wait_for_exit
from .server import KEEPALIVE, RECONNECT_RETRY
from .status import PidLock, holder_pid

__all__ = ["Watcher", "IDLE_EXIT", "run"]

log = logging.getLogger("libvirt_nitro.service.watch")

#: Seconds without any running domain after which the watcher exits.
IDLE_EXIT = 60.0


class Watcher:
    """The watcher process (see the module docstring)."""

    def __init__(self, uri: str):
        from ..domain import libvirt_module

        self.libvirt = libvirt_module()
        self.uri = uri
        self.conn: Any = None
        self.stop_reason: str | None = None
        self.spawned = 0
        self._lost = True
        self._next_connect = 0.0
        self._idle_since: float | None = None
        self._pending: set[str] = set()

    def _connect(self) -> bool:
        libvirt = self.libvirt
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError:
            return False
        conn.registerCloseCallback(lambda *_: setattr(self, "_lost", True), None)
        with contextlib.suppress(libvirt.libvirtError):
            conn.setKeepAlive(*KEEPALIVE)
        conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, self._on_metadata, None
        )
        conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
        )
        self.conn = conn
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            self._pending.add(dom.UUIDString())
        return True

    def _on_metadata(self, _conn: Any, dom: Any, mtype: int, nsuri: str, _opaque: Any) -> None:
        if mtype == self.libvirt.VIR_DOMAIN_METADATA_ELEMENT and nsuri == NAMESPACE:
            self._pending.add(dom.UUIDString())

    def _on_lifecycle(self, _conn: Any, dom: Any, event: int, _detail: int, _opaque: Any) -> None:
        if event == self.libvirt.VIR_DOMAIN_EVENT_STARTED:
            self._pending.add(dom.UUIDString())

    def _check(self, uuid: str) -> None:
        """Spawn a server for *uuid* if it runs with a valid element and nobody serves it."""
        from .config import get_element
        from .metadata import parse_text

        libvirt = self.libvirt
        if holder_pid(uuid) is not None:
            return
        try:
            dom = self.conn.lookupByUUIDString(uuid)
            if not dom.isActive():
                return
            text = get_element(dom, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            if text is None:
                return
            parse_text(text)
        except libvirt.libvirtError:
            return  # gone meanwhile
        except InvalidTraceConfig as exc:
            log.error("domain %s: <nitro:trace> ignored: %s", dom.name(), exc)
            return
        except NitroError as exc:
            log.warning("domain %s: %s", uuid, exc)
            return
        spawn_detached(
            service_command("-c", self.uri, "serve", uuid), LOG_DIR / f"serve-{dom.name()}.log"
        )
        self.spawned += 1
        log.info("domain %s: <nitro:trace> and no server: serve %s spawned", dom.name(), uuid)

    def _step(self) -> None:
        libvirt = self.libvirt
        now = time.monotonic()
        if self._lost and now >= self._next_connect:
            self._next_connect = now + RECONNECT_RETRY
            self.conn = None
            if self._connect():
                self._lost = False
                log.info("connected to %s", self.uri)
        if self.conn is None:
            return
        pending, self._pending = self._pending, set()
        for uuid in pending:
            self._check(uuid)
        try:
            running = self.conn.numOfDomains()
        except libvirt.libvirtError:
            return
        if running:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= IDLE_EXIT:
            self.stop_reason = f"no domain running for {IDLE_EXIT:.0f} s"

    def run(self, hook_pid: int | None = None) -> int:
        """Watch until SIGTERM/SIGINT or idle; return the exit status."""
        libvirt = self.libvirt
        if hook_pid is not None:
            wait_for_exit(hook_pid, 120.0)
        lock = PidLock("watch")
        if not lock.acquire():
            log.info("a watcher already runs (pid %s)", holder_pid("watch"))
            return 0
        libvirt.virEventRegisterDefaultImpl()
        signals: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, _frame: signals.append(signum))
        timer = libvirt.virEventAddTimeout(250, lambda *_: None, None)
        log.info("watching %s for <nitro:trace> elements", self.uri)
        try:
            while self.stop_reason is None:
                if signals:
                    self.stop_reason = signal.Signals(signals[0]).name
                    break
                self._step()
                libvirt.virEventRunDefaultImpl()
        finally:
            libvirt.virEventRemoveTimeout(timer)
            lock.release()
            log.info("stopping (%s); %d servers spawned", self.stop_reason, self.spawned)
            if self.conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    self.conn.close()
        return 0


def run(args: argparse.Namespace) -> int:
    """``watch``: the host's watcher (see the module docstring)."""
    setup_logging("libvirt-nitro watch")
    return Watcher(args.connect or "qemu:///system").run(hook_pid=args.hook_pid)
