"""``libvirt-nitro hook``: the libvirt QEMU hook (``/etc/libvirt/hooks/qemu.d/…``).

libvirtd runs it as ``hook DOMAIN OPERATION SUB-OPERATION EXTRA`` with the domain XML on
stdin, synchronously, holding the domain: the hook must not call libvirt (that deadlocks) and
must not block. So it only reads stdin and acts through processes and files:

- ``started`` of a domain with a ``<nitro:trace>`` element: validate it and spawn a detached
  ``serve UUID --hook-pid PID`` (double fork, own session, stdio on a log file), which waits
  for this hook to return before it connects to libvirt. Any ``started`` also makes sure the
  host's watcher (:mod:`.watch`) runs, so that adding the element to a running domain later
  starts tracing.
- ``stopped``: SIGUSR1 the domain's server ("the domain is gone": it exits without giving
  back a guest that no longer exists; no wait, libvirtd is busy stopping the domain);
  ``release``: make sure it is gone (SIGKILL after a short wait; its guard cleans up).

Whatever happens, the hook exits 0: a broken element, a full disk or a bug of ours is logged
(``LOG_DIR/hook.log``, ``<N>``-prefixed lines) and the domain starts anyway.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import IO

from lxml import etree

from ..errors import InvalidTraceConfig, MalformedDomainXml
from .journal import JournalFormatter
from .metadata import DEFAULT_LOG_DIR, find_in_domain_xml, parse_element
from .status import holder_pid, signal_holder

__all__ = ["LOG_DIR", "main", "spawn_detached", "service_command", "ensure_watcher"]

log = logging.getLogger("libvirt_nitro.service.hook")

#: Where the hook and the processes it spawns log (``hook.log``, ``serve-NAME.log``,
#: ``watch.log``).
LOG_DIR = Path(os.environ.get("LIBVIRT_NITRO_LOG_DIR", DEFAULT_LOG_DIR))
#: How long ``release`` waits for a server to exit before SIGKILL (s).
RELEASE_WAIT = 3.0


def service_command(*args: str) -> list[str]:
    """argv running a service verb with this interpreter (``python -m libvirt_nitro.service``,
    which works whether or not the main CLI has the verb)."""
    return [sys.executable, "-m", "libvirt_nitro.service", *args]


def spawn_detached(argv: list[str], log_path: Path) -> None:
    """Run *argv* as a daemon: double fork, new session, stdin /dev/null, stdout and stderr
    appended to *log_path*, no other fd inherited (libvirtd waits for the hook's pipes to
    close), cwd ``/``. Returns once the intermediate child has exited."""
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            null = os.open(os.devnull, os.O_RDWR)
            out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            os.chdir("/")
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.waitpid(pid, 0)


def ensure_watcher(uri: str, hook_pid: int | None = None) -> None:
    """Start the host's watcher unless one runs."""
    if holder_pid("watch") is None:
        args = ["-c", uri, "watch"]
        if hook_pid is not None:
            args += ["--hook-pid", str(hook_pid)]
        spawn_detached(service_command(*args), LOG_DIR / "watch.log")


def _domain_uuid(xml: bytes) -> str | None:
    try:
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None
    return (root.findtext("uuid") or "").strip() or None


def _started(name: str, xml: bytes, uri: str) -> None:
    element = find_in_domain_xml(xml)
    if element is None:
        ensure_watcher(uri, os.getpid())
        return
    try:
        parse_element(element)
    except InvalidTraceConfig as exc:
        log.error("domain %s: <nitro:trace> ignored, the domain starts untraced: %s", name, exc)
        ensure_watcher(uri, os.getpid())
        return
    uuid = _domain_uuid(xml)
    if uuid is None:
        log.error("domain %s: no <uuid> in the XML libvirt gave the hook", name)
        return
    spawn_detached(
        service_command("-c", uri, "serve", uuid, "--hook-pid", str(os.getpid())),
        LOG_DIR / f"serve-{name}.log",
    )
    log.info("domain %s started: tracer spawned (serve %s)", name, uuid)
    ensure_watcher(uri, os.getpid())


def _stopping(name: str, operation: str, xml: bytes) -> None:
    uuid = _domain_uuid(xml)
    if uuid is None:
        return
    # SIGUSR1 tells the server that the domain is gone: nothing to give back, exit at once.
    wait = RELEASE_WAIT if operation == "release" else 0.0
    pid = signal_holder(uuid, wait=wait, signum=signal.SIGUSR1)
    if pid is not None:
        log.info("domain %s %s: tracer (pid %d) told to stop", name, operation, pid)


def main(argv: list[str], stdin: IO[bytes] | None = None) -> int:
    """The hook: ``argv`` is libvirt's (DOMAIN, OPERATION, SUB-OPERATION[, EXTRA]); always 0."""
    xml = (stdin or sys.stdin.buffer).read()  # always drain it: libvirtd writes it all
    try:
        LOG_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(LOG_DIR / "hook.log")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter("libvirt-nitro hook"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        if len(argv) < 2:
            log.error("usage: hook DOMAIN OPERATION [SUB-OPERATION [EXTRA]] (got %r)", argv)
            return 0
        name, operation = argv[0], argv[1]
        uri = "qemu:///system" if os.geteuid() == 0 else "qemu:///session"
        if operation == "started":
            _started(name, xml, uri)
        elif operation in ("stopped", "release"):
            _stopping(name, operation, xml)
    except MalformedDomainXml as exc:
        log.error("domain %s: %s", argv[0], exc)
    except BaseException:  # never fail (or block) the domain's start
        log.exception("hook %r failed", argv)
    finally:
        handler.close()
    return 0
