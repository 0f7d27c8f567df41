"""Run strace's test programs in a test guest under libvirt-nitro and compare, per test.

One TCG test guest boots with the programs appended to its initrd
(:func:`tests.oracle.build.oracle_image`). For each test, libvirt-nitro attaches to the
domain exactly as ``libvirt-nitro trace DOM --comm NAME -e trace=SET -s N`` does (the same
:func:`~libvirt_nitro.attach` filter and capture size, the same
:class:`~libvirt_nitro.output.StraceFormatter`), the guest runs the program through
``/oracle/launch`` (``tests/oracle/launch.c``: as strace's harness, in ``NAME.dir``, as
``../NAME``, stdout to a file), the trace stops, and the program's stdout comes back over
the control port (``/oracle/fetch``). The lines of the program's own process (strace
follows no child or thread without ``-f``) are compared with that stdout
(:func:`tests.oracle.compare.compare`).
"""

from __future__ import annotations

import base64
import gzip
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libvirt_nitro import attach
from libvirt_nitro.event_ids import EVENT_ID_SYSCALL
from libvirt_nitro.output import StraceFormatter
from libvirt_nitro.pipeline import Filter
from libvirt_nitro.strace import parse_trace_expr
from libvirt_nitro.testing.guest import GuestImage, TestGuest

from .catalog import Spec
from .compare import Outcome, compare

__all__ = ["Result", "OracleGuest", "GUEST_MEMORY_MIB", "TEST_TIMEOUT"]

#: The guest holds every program in its initramfs (~0.7 MB each, static).
GUEST_MEMORY_MIB = 1536
#: A test's run under tracing (every guest system call stops the TCG guest: ~15 ms each).
TEST_TIMEOUT = float(os.environ.get("LIBVIRT_NITRO_ORACLE_TIMEOUT", "600"))
#: How long a libvirtd restarted under the oracle may take to answer again.
RECONNECT_TIMEOUT = 120.0
#: What the Linux kernel keeps of a command name (``TASK_COMM_LEN`` - 1).
COMM_LEN = 15


@dataclass
class Result:
    """One test's run: the spec, the outcome, what libvirt-nitro printed for the program's
    process, the program's stdout and stderr, and the seconds it took."""

    spec: Spec
    outcome: Outcome
    ours: list[str] = field(default_factory=list)
    expected: str = ""
    stderr: str = ""
    seconds: float = 0.0
    events: int = 0

    @property
    def status(self) -> str:
        """``pass``, ``fail``, ``skip`` or ``error``."""
        return self.outcome.status


class OracleGuest:
    """A booted test guest holding the strace test programs; :meth:`run` runs one test."""

    def __init__(
        self,
        conn: Any,
        libvirt: Any,
        image: GuestImage,
        name: str | None = None,
        timeout: float = TEST_TIMEOUT,
    ):
        self.conn = conn
        self.uri = conn.getURI()
        self.timeout = timeout
        self.libvirt = libvirt
        self.image = image
        self.name = name or f"nitro-test-oracle-{os.getpid()}"
        self.guest: TestGuest | None = None
        self.boot_seconds = 0.0
        #: Set (e.g. by a signal handler) to stop the test that runs: a KeyboardInterrupt
        #: raised in libvirt's loop would land in a libvirt callback, which swallows it.
        self.stop = threading.Event()

    def __enter__(self) -> OracleGuest:
        start = time.monotonic()
        self.guest = TestGuest.start(
            self.conn, self.name, self.image, accel="qemu", memory_mib=GUEST_MEMORY_MIB
        )
        self.boot_seconds = time.monotonic() - start
        # The guest has no entropy source (no RDRAND under TCG's default CPU): until its
        # CRNG is seeded, getrandom(GRND_NONBLOCK) fails and glibc's malloc falls back to
        # clock_gettime (a system call: the clocksource is jiffies), calls strace's tests
        # do not expect. Reading /dev/random once blocks until the kernel seeded it.
        try:
            self.guest.run(
                "/bin/busybox",
                "dd",
                "if=/dev/random",
                "of=/dev/null",
                "bs=1",
                "count=1",
                timeout=120,
            )
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.guest is not None:
            self.guest.destroy()
            self.guest = None

    def run(self, spec: Spec) -> Result:
        """Run test *spec* in the guest under libvirt-nitro and compare."""
        assert self.guest is not None, "use OracleGuest as a context manager"
        start = time.monotonic()
        try:
            syscalls = frozenset(parse_trace_expr(spec.trace))
        except Exception as exc:  # the product refuses the expression: the test fails
            return Result(spec, Outcome("fail", f"-e trace={spec.trace} refused: {exc}"))
        trace_filter = Filter(syscalls=syscalls, comms=frozenset({spec.prog[:COMM_LEN]}))
        tracer = self._attach(trace_filter, spec.string_limit)
        events: list[Any] = []
        try:
            tracer.eventRegisterAny(
                EVENT_ID_SYSCALL, lambda _c, _d, event, _o: events.append(event), None
            )
            command = ["/oracle/launch", spec.prog, *spec.redirections]
            launched = self._run_while_tracing(
                tracer, lambda: self.guest.run(*command, "--", *spec.args, timeout=self.timeout)
            )
        finally:
            tracer.stop()
            tracer.dispatch()
            tracer.close()
        values = launched.values
        pid = int(values["oracle-pid"]) if "oracle-pid" in values else None
        if launched.signal is not None:
            exit_status = 128 + launched.signal
        else:
            exit_status = launched.exit_code
        expected, stderr = self._fetch(spec.prog)
        if spec.expected_file is not None:  # the script compares with a file of the source
            expected = Path(spec.expected_file).read_text()
        formatter = StraceFormatter(spec.string_limit)
        # what the command line prints (its lines without the [pid N comm] prefix): calls
        # and, where the formatter has them, strace's notes (--- SIGUSR1 ---, +++ exited)
        texts = getattr(formatter, "texts", formatter.calls)
        ours = [
            text
            for event in events
            if event.record is not None
            for task, text in texts(event.record)
            if task is not None and task.pid == pid and task.tid == pid
        ]
        if pid is None:
            outcome = Outcome("error", f"the launcher did not start: {launched.output[-3:]}")
        else:
            outcome = compare(
                expected,
                ours,
                exit_status,
                start_from=spec.start_from,
                drop_through=spec.drop_through,
                drop_matching=spec.drop_matching,
                uniq=spec.uniq,
                stderr=stderr,
            )
        return Result(spec, outcome, ours, expected, stderr, time.monotonic() - start, len(events))

    def _attach(self, trace_filter: Filter, string_limit: int) -> Any:
        """``attach()`` as ``trace --comm ... -e trace=... -s N`` does; once more on a new
        connection if libvirtd went away meanwhile."""
        for attempt in (1, 2):
            self._reconnect_if_dead()
            try:
                return attach(
                    self.guest.dom,
                    backend="gdbstub",
                    filter=trace_filter,
                    capture_bytes=string_limit,
                )
            except Exception:  # a libvirtError, or the NitroError that wraps one
                if attempt == 2 or self.conn.isAlive():
                    raise
        raise AssertionError("not reached")

    def _reconnect_if_dead(self) -> None:
        """A libvirtd restart (another test suite's, say) closes our connection while the
        guest runs on: open a new one and find the domain again."""
        assert self.guest is not None
        if self.conn.isAlive():
            return
        uuid = self.guest.dom.UUIDString()  # cached: no call to libvirtd
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        while True:  # libvirtd may still be starting
            try:
                self.conn = self.libvirt.open(self.uri)
                break
            except self.libvirt.libvirtError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)
        self.guest.dom = self.conn.lookupByUUIDString(uuid)

    def _run_while_tracing(self, tracer: Any, action: Any) -> Any:
        """Run *action* (a guest command) in a thread while this thread runs libvirt's loop
        (the tracer's events are dispatched there); its result, or its exception raised."""
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["value"] = action()
            except BaseException as exc:  # re-raised here
                outcome["error"] = exc

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        while worker.is_alive():
            if self.stop.is_set():
                raise KeyboardInterrupt("stopped while a test ran")
            if not tracer.running:
                worker.join(self.timeout)
                break
            self.libvirt.virEventRunDefaultImpl()
        if "error" in outcome:
            raise outcome["error"]
        if tracer.error is not None:
            raise RuntimeError(f"tracing stopped: {tracer.error}")
        return outcome["value"]

    def _fetch(self, prog: str) -> tuple[str, str]:
        """The program's stdout and stderr, from the guest (untraced)."""
        assert self.guest is not None
        lines = self.guest.run("/bin/busybox", "sh", "/oracle/fetch", prog, timeout=300).output
        parts: dict[str, str] = {}
        current: str | None = None
        chunks: list[str] = []
        for line in lines:
            if line.startswith("oracle-begin-"):
                current, chunks = line.removeprefix("oracle-begin-"), []
            elif line.startswith("oracle-end-") and current is not None:
                data = base64.b64decode("".join(chunks))
                parts[current] = gzip.decompress(data).decode(errors="surrogateescape")
                current = None
            elif current is not None:
                chunks.append(line.strip())
        return parts.get("out", ""), parts.get("err", "")
