"""The kernel backend on a real libvirt domain, in the emulated test bed.

libvirtd and virtlogd of the host's installation run in the bed (:mod:`tests.bed.libvirt_bed`);
the test guest (:mod:`libvirt_nitro.testing.guest`: Debian's kernel, a busybox initramfs and
the workload of ``tests/guest/workload.c``) runs as a transient ``<domain type='kvm'>`` with 2
vCPUs (both on one of the bed's CPUs: :data:`~tests.bed.libvirt_bed.GUEST_CPUSET`), its QEMU on
the bed's patched KVM. The domain is resolved by the project's domain layer (QEMU's kvm-vm and
kvm-vcpu:N fds) and traced by the kernel backend, through the command line and through
``attach()`` with callbacks on libvirt's default event loop; the workload's known sequence is
checked event by event. The guest outlives the tracer's SIGKILL, its close, and a libvirtd
restart mid-trace (it then runs its workload untraced: EFER.SCE its own, a genuine ud2 still
SIGILL); ``virsh destroy`` mid-trace ends the tracer with one error line. The kernel backend's
records are raw: number, argument registers, return value, vCPU, CR3 (entry and exit paired by
their frame), no task, nothing decoded. A guest that dies shows its console, QEMU's log and its
triple faults (:class:`~tests.bed.libvirt_bed.ShutdownWatch`).

Python here runs ~35x slower than on the host: few guest commands, every wait a deadline.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from libvirt_nitro import attach
from libvirt_nitro.domain import hmp, resolve
from libvirt_nitro.event_ids import EVENT_ID_LOST, EVENT_ID_SYSCALL
from libvirt_nitro.linux import syscall_number
from libvirt_nitro.nitrokvm import NitroFd
from libvirt_nitro.output import JsonFormatter
from libvirt_nitro.runtime import acquire_trace_lock
from libvirt_nitro.testing.guest import CommandResult, GuestImage, TestGuest, console_log_path
from tests.bed.libvirt_bed import GUEST_CPUSET, URI, LibvirtBed, Loop, ShutdownWatch
from tests.support import TraceProcess, require, wait_for

ROOT = Path(__file__).resolve().parents[2]
IN_BED = os.environ.get("LIBVIRT_NITRO_IN_BED") == "1"
#: The test guest as scripts/setup-host built it on the host (tests/guest/build-guest).
GUEST_IMAGE = Path("/var/cache/libvirt-nitro/guest/current")
NAME = "nitro-bed-kvm"
VCPUS = 2
#: Seconds for the guest to boot to its workload: 11-36 s measured (2 vCPUs, pci=noearly).
BOOT_DEADLINE = 240.0
#: Seconds for one guest command, traced or not.
GUEST_DEADLINE = 120.0
#: Seconds for ``python -m libvirt_nitro`` to start and arm: 2-11 s measured.
CLI_DEADLINE = 180.0

NR = {
    name: syscall_number(name)
    for name in (
        "read",
        "write",
        "openat",
        "close",
        "getpid",
        "clone",
        "wait4",
        "exit_group",
        "set_robust_list",
    )
}
NOSYS = 1023  # workload.c's UNKNOWN_SYSCALL
MARKER_TEXT = "nitro-marker-write\n"  # what workload.c writes to /dev/null
#: Entries after which the address space is no longer the process's.
ENDS = {syscall_number(name) for name in ("exit_group", "exit", "execve")}
AT_FDCWD = 0xFFFFFF9C  # -100 as the 32-bit int the workload passes through syscall(2)
CR3_ADDRESS = 0x000F_FFFF_FFFF_F000  # the page-table root, without PCID/flag bits
#: The guest's triple faults, for a failure message (a guest that died leaves no console).
SHUTDOWNS = ShutdownWatch()


def _report(config: pytest.Config, text: str) -> None:
    """A ``testbed: libvirt:`` line on the console (the timings of this module)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"testbed: libvirt: {text}")


def _fate() -> str:
    """What became of the guest: the tails of its console and of QEMU's libvirt log, and
    its triple faults."""
    parts = [SHUTDOWNS.report()]
    for path in (console_log_path(NAME), Path(f"/var/log/libvirt/qemu/{NAME}.log")):
        lines = path.read_text(errors="replace").splitlines() if path.exists() else ["(none)"]
        # not the workload's own ud2 children (one line each), nor QEMU's command line
        lines = [
            line
            for line in lines
            if "trap invalid opcode" not in line
            and "callbacks suppressed" not in line
            and not line.startswith(("-", "/", "LC_ALL", "PATH", "HOME", "TMPDIR", "XDG_"))
        ]
        parts.append(f"--- {path}:\n" + "\n".join(lines[-40:]))
    return "\n".join(parts)


def run_command(guest: TestGuest, *command: str) -> CommandResult:
    """A workload command; if the guest is gone or silent, a failure that says why."""
    try:
        return guest.run(*command, timeout=GUEST_DEADLINE)
    except (ConnectionError, TimeoutError) as exc:
        pytest.fail(f"guest command {command}: {exc!r}; the guest:\n{_fate()}", pytrace=False)


def _guest_state(dom: Any) -> str:
    """The tail of the guest's console and where its vCPUs are (twice, 2 s apart), for a
    failure message."""
    console = console_log_path(NAME)
    lines = [console.read_text(errors="replace")[-2000:] if console.exists() else "no console"]
    for _ in range(2):
        try:
            regs = hmp(dom, "info registers -a")
        except Exception as exc:  # noqa: BLE001 - a diagnostic, whatever it finds
            lines.append(f"info registers: {exc}")
            break
        lines.append(
            " | ".join(
                line.split()[0] for line in regs.splitlines() if line.startswith(("RIP=", "CPU#"))
            )
        )
        time.sleep(2)
    lines.append(SHUTDOWNS.report())
    return "\n".join(lines)


# ------------------------------------------------------------------ fixtures
@dataclass
class BedDomain:
    """The module's libvirt daemon, connection and guest domain."""

    bed: LibvirtBed
    conn: Any
    guest: TestGuest
    config: pytest.Config

    @property
    def dom(self) -> Any:
        return self.guest.dom

    def reconnect(self) -> None:
        """A new connection (libvirtd restarted), and the domain through it."""
        import libvirt

        uuid = self.guest.dom.UUIDString()
        self.conn = libvirt.open(URI)
        self.guest.dom = self.conn.lookupByUUIDString(uuid)


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    """libvirt's default event loop in a thread, before any connection (which then
    negotiates keepalive: the loop answers it all along)."""
    if not IN_BED:
        pytest.skip("runs inside the emulated test bed only (tests/test_kernel_nitro.py)")
    event_loop = Loop()
    try:
        yield event_loop
    finally:
        event_loop.close()


@pytest.fixture(scope="module")
def kvm_guest(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, loop: Loop
) -> Iterator[BedDomain]:
    """libvirtd started in the bed and the test guest booted as a transient 2-vCPU KVM
    domain, its workload answering; destroyed, and libvirtd stopped, after the module."""
    import libvirt

    require(os.geteuid() == 0, "root (the bed's libvirtd)")
    require(GUEST_IMAGE.is_dir(), f"the test guest built on the host ({GUEST_IMAGE})")
    config = request.config
    bed = LibvirtBed(tmp_path_factory.mktemp("libvirt"))
    SHUTDOWNS.start()
    try:
        bed.prepare()
        started = bed.start()
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        conn = libvirt.open(URI)
        image = GuestImage.load(GUEST_IMAGE.resolve())
        begin = time.monotonic()
        guest = TestGuest.start(
            conn, NAME, image, accel="kvm", vcpus=VCPUS, wait=False, cpuset=GUEST_CPUSET
        )
        created = time.monotonic() - begin
        try:
            booted = guest.connect(BOOT_DEADLINE)
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc} after {time.monotonic() - begin:.0f} s"
            state = _guest_state(guest.dom)
            guest.destroy()
            pytest.fail(f"the KVM guest did not boot ({why}):\n{state}", pytrace=False)
        # libvirtd probes QEMU's capabilities at the first domain, unless its cache held them
        warm = bed.save_capabilities()
        _report(
            config,
            f"libvirtd answered in {started:.1f} s; domain created in {created:.1f} s "
            f"(QEMU capabilities {'cached' if warm else 'probed'}), guest booted in "
            f"{booted:.1f} s",
        )
        domain = BedDomain(bed, conn, guest, config)
        try:
            yield domain
        finally:
            begin = time.monotonic()
            domain.guest.destroy()
            _report(config, f"domain destroyed in {time.monotonic() - begin:.1f} s")
        # a guest that died and was not used afterwards must not pass unseen
        assert not SHUTDOWNS.events(), SHUTDOWNS.report()
    finally:
        SHUTDOWNS.stop()
        bed.save_capabilities()
        bed.close()


# ------------------------------------------------------------------ the tracer process
def trace_cli() -> TraceProcess:
    """``python -m libvirt_nitro trace NAME --backend kernel --json`` on the bed's libvirtd."""
    return TraceProcess(NAME, "--backend", "kernel", "--json", uri=URI, timeout=CLI_DEADLINE)


# ------------------------------------------------------------------ the known sequence
@dataclass
class Workload:
    """What the guest ran while traced: ``sequence``, then ``getpid 5`` pinned to each
    vCPU (busybox taskset)."""

    sequence: CommandResult
    pinned: list[CommandResult]


def run_workload(guest: TestGuest) -> Workload:
    sequence = run_command(guest, "sequence")
    pinned = [
        run_command(
            guest, "/bin/busybox", "taskset", str(1 << vcpu), "/bin/workload", "getpid", "5"
        )
        for vcpu in range(VCPUS)
    ]
    return Workload(sequence, pinned)


def _cr3(record: dict) -> int:
    return record["cr3"] & CR3_ADDRESS


def _ends_life(record: dict) -> bool:
    """An entry after which its address space is the process's no more (exit_group, exit,
    execve: they do not return through SYSRET, their exit is never seen)."""
    return record["direction"] == "enter" and record["nr"] in ENDS


def _life(records: list[dict], pid: int) -> list[dict]:
    """The records of the process whose getpid() returned *pid*: those of its address space
    (CR3) between the end of the process that had it before (a page-table root is reused)
    and its own exit_group/execve, in order."""
    found = [
        i
        for i, r in enumerate(records)
        if r["direction"] == "exit" and r["nr"] == NR["getpid"] and r["ret"] == pid
    ]
    assert found, f"no getpid() = {pid}"
    cr3 = _cr3(records[found[0]])
    mine = [i for i, r in enumerate(records) if _cr3(r) == cr3]
    first = mine.index(found[0])
    last = mine.index(found[-1])
    while first > 0 and not _ends_life(records[mine[first - 1]]):
        first -= 1
    while last < len(mine) - 1 and not _ends_life(records[mine[last]]):
        last += 1
    return [records[i] for i in mine[first : last + 1]]


def _calls(records: list[dict]) -> list[tuple[dict, dict | None]]:
    """(entry, its exit or None) in entry order: each exit comes just after its entry (one
    single-threaded process) and carries the entry's number (paired by the pipeline)."""
    calls: list[tuple[dict, dict | None]] = []
    for record in records:
        if record["direction"] == "enter":
            calls.append((record, None))
        else:
            assert calls and calls[-1][1] is None, f"an exit without its entry: {record}"
            assert record["nr"] == calls[-1][0]["nr"], (calls[-1][0], record)
            calls[-1] = (calls[-1][0], record)
    return calls


def _check_records(records: list[dict]) -> None:
    """What holds for every record: a vCPU of the domain, a direction, an address; every exit
    paired with its entry but those of calls under way when tracing began (before any entry
    of their address space)."""
    assert records, "no events"
    entered: set[int] = set()
    for record in records:
        assert record["vcpu"] in range(VCPUS), record
        assert record["rip"] > 0 and record["cr3"] > 0, record
        if record["direction"] == "enter":
            assert len(record["args"]) == 6 and record["name"] is not None, record
            entered.add(_cr3(record))
        else:
            assert record["direction"] == "exit" and isinstance(record["ret"], int), record
            assert record["nr"] is not None or _cr3(record) not in entered, record


def check_workload(records: list[dict], done: Workload) -> None:
    """The workload's calls, event by event, among every call of the guest that *records*
    (``trace --json`` objects) hold."""
    _check_records(records)
    seq = done.sequence
    assert seq.exit_code == 0, seq.output
    values = seq.values
    pid, fork_child, ud2_child = (int(values[k]) for k in ("pid", "fork_child", "ud2_child"))
    marker_fd, null_fd = int(values["openat"]), int(values["write_fd"])

    calls = _calls(_life(records, pid))

    # Its output (the key=value lines, on the control port: fd 1) is written by stdio
    # between the calls the workload makes through syscall(2): complete writes, together
    # exactly the bytes of the lines read.
    def stdout(entry: dict) -> bool:
        return entry["nr"] == NR["write"] and entry["args"][0] == 1

    written = 0
    for entry, exit_ in calls:
        if stdout(entry):
            assert exit_ is not None and exit_["ret"] == entry["args"][2] > 0, (entry, exit_)
            written += exit_["ret"]
    assert written == sum(len(line) + 1 for line in seq.output)

    getpid = (NR["getpid"], {}, pid)
    expected = [
        (NR["set_robust_list"], {}, 0),  # glibc's fork() child: the workload server forked
        getpid,  # "pid="
        getpid,
        getpid,
        getpid,  # getpid 3
        (NR["openat"], {0: AT_FDCWD, 2: os.O_RDONLY}, marker_fd),  # "/nitro-marker"
        (NR["close"], {0: marker_fd}, 0),
        (NR["openat"], {0: AT_FDCWD, 2: os.O_WRONLY}, null_fd),  # "/dev/null"
        (NR["write"], {0: null_fd, 2: len(MARKER_TEXT)}, len(MARKER_TEXT)),
        (NR["close"], {0: null_fd}, 0),
        (NOSYS, {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6}, -errno.ENOSYS),
        (NR["clone"], {}, fork_child),  # fork
        (NR["wait4"], {0: fork_child}, fork_child),
        (NR["clone"], {}, ud2_child),  # fork of the ud2 child
        (NR["wait4"], {0: ud2_child}, ud2_child),
        (NR["exit_group"], {0: 0}, None),  # never returns
    ]
    seen = [(e["nr"], e["args"], x and x["ret"]) for e, x in calls if not stdout(e)]
    numbers = [nr for nr, _, _ in seen]
    assert numbers == [nr for nr, _, _ in expected], numbers
    for index, ((_, args, ret), (_, want_args, want_ret)) in enumerate(
        zip(seen, expected, strict=True)
    ):
        where = f"call {index} of the sequence: {numbers[index]}({args}) = {ret}"
        for reg, value in want_args.items():  # int arguments: their low 32 bits
            assert args[reg] & 0xFFFFFFFF == value & 0xFFFFFFFF, where
        assert ret == want_ret, where
    assert values["fork_child_exit"] == "7"
    assert values["ud2_child_signal"] == str(int(signal.SIGILL))  # the genuine #UD

    # The fork child: getpid() = its pid, then exit_group(7).
    child = [(e["nr"], x and x["ret"]) for e, x in _calls(_life(records, fork_child))]
    assert child == [
        (NR["set_robust_list"], 0),
        (NR["getpid"], fork_child),
        (NR["exit_group"], None),
    ], child
    assert _life(records, fork_child)[-1]["args"][0] == 7

    # Each pinned `getpid 5` ran on its vCPU: the 5 calls there, entry and exit.
    for vcpu, result in enumerate(done.pinned):
        assert result.exit_code == 0, result.output
        mine = int(result.values["getpid"])
        getpids = [(e, x) for e, x in _calls(_life(records, mine)) if e["nr"] == NR["getpid"]]
        assert len(getpids) == 5, getpids
        assert {r["vcpu"] for call in getpids for r in call} == {vcpu}
        assert {x["ret"] for _, x in getpids} == {mine}


def assert_given_back(domain: BedDomain) -> None:
    """The guest runs on untraced: its workload completes (EFER.SCE its own: with SCE
    left cleared and no tracer, each SYSCALL would raise #UD and the process die of
    SIGILL), a genuine ud2 still gets SIGILL, and nothing holds the domain (the trace lock
    is free, a new nitro attachment finds no trap armed)."""
    result = run_command(domain.guest, "sequence")
    assert result.exit_code == 0, result.output
    assert result.values["nosys"] == "-1" and result.values["fork_child_exit"] == "7"
    assert result.values["ud2_child_signal"] == str(int(signal.SIGILL))
    dom = domain.dom
    os.close(acquire_trace_lock(dom.UUIDString(), dom.name()))
    with resolve(dom, kvm_fds=True) as process:
        assert process.kvm_fds is not None
        with NitroFd.attach_vm(process.kvm_fds.vm) as nitro:
            assert nitro.get_traps().traps == 0


class Busy:
    """A guest command running in a thread (``loop N``: N getpid), so that the guest makes
    system calls while the tracer ends."""

    def __init__(self, guest: TestGuest, count: int = 20000) -> None:
        self.outcome: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(guest, count), daemon=True)
        self.thread.start()

    def _run(self, guest: TestGuest, count: int) -> None:
        try:
            self.outcome["result"] = guest.run("loop", str(count), timeout=GUEST_DEADLINE)
        except BaseException as exc:  # the test looks at it
            self.outcome["error"] = exc

    def result(self) -> CommandResult:
        self.thread.join(GUEST_DEADLINE)
        assert not self.thread.is_alive(), "the guest's loop did not end"
        error = self.outcome.get("error")
        if isinstance(error, ConnectionError | TimeoutError):
            pytest.fail(f"the guest's loop: {error!r}; the guest:\n{_fate()}", pytrace=False)
        if error is not None:
            raise error
        return self.outcome["result"]


# ------------------------------------------------------------------ tests
def test_domain_resolves_to_qemu_and_its_kvm_fds(kvm_guest: BedDomain) -> None:
    with resolve(kvm_guest.dom) as process:
        assert (process.name, process.accel) == (NAME, "kvm")
        assert [v.index for v in process.vcpus] == list(range(VCPUS))
        for vcpu in process.vcpus:
            assert Path(f"/proc/{process.pid}/task/{vcpu.thread_id}").exists()
        fds = process.kvm_fds
        assert fds is not None and fds.pid == process.pid
        assert os.readlink(f"/proc/self/fd/{fds.vm}") == "anon_inode:kvm-vm"
        assert sorted(fds.vcpus) == list(range(VCPUS))
        for index, fd in fds.vcpus.items():
            assert os.readlink(f"/proc/self/fd/{fd}") == f"anon_inode:kvm-vcpu:{index}"
        pid, remote = process.pid, dict(fds.remote)
    done = subprocess.run(
        [sys.executable, "-m", "libvirt_nitro", "-c", URI, "inspect", NAME, "--json"],
        capture_output=True,
        text=True,
        timeout=CLI_DEADLINE,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert (view["name"], view["pid"], view["accel"]) == (NAME, pid, "kvm")
    assert [v["index"] for v in view["vcpus"]] == list(range(VCPUS))
    assert view["kvm_fds"]["vm"]["qemu_fd"] == remote["anon_inode:kvm-vm"]
    assert [(v["index"], v["qemu_fd"]) for v in view["kvm_fds"]["vcpus"]] == [
        (i, remote[f"anon_inode:kvm-vcpu:{i}"]) for i in range(VCPUS)
    ]


def test_cli_traces_the_known_sequence(kvm_guest: BedDomain) -> None:
    trace = trace_cli()
    try:
        armed = trace.wait_armed()
        assert f"libvirt-nitro: tracing {NAME} via kernel (Ctrl-C to stop)" in trace.stderr
        done = run_workload(kvm_guest.guest)
        assert trace.interrupt() == 0, trace.stderr
    finally:
        trace.kill()
    _report(kvm_guest.config, f"trace --backend kernel armed {armed:.1f} s after its start")
    records = trace.records()
    check_workload(records, done)
    assert trace.stderr[-1] == f"libvirt-nitro: {len(records)} events, 0 dropped", trace.stderr
    assert "Traceback" not in "\n".join(trace.stderr)


@pytest.mark.parametrize("delivery", ["async", "sync"])
def test_attach_delivers_the_sequence_on_libvirts_loop(
    kvm_guest: BedDomain, loop: Loop, delivery: str
) -> None:
    """attach() + eventRegisterAny: the callbacks run on libvirt's loop thread with the
    known sequence; with synchronous delivery each trapped vCPU waited for them."""
    tracer = attach(kvm_guest.dom, backend="kernel", delivery=delivery)
    formatter = JsonFormatter(decoded=False)
    records: list[dict] = []
    lost: list[int] = []
    threads: set[int] = set()
    passed: set[tuple] = set()

    def on_event(conn: Any, dom: Any, event: Any, opaque: Any) -> None:
        threads.add(threading.get_ident())
        passed.add((conn.getURI(), dom.UUIDString(), opaque))
        records.append(formatter.as_dict(event.record))

    def on_lost(_conn: Any, _dom: Any, count: int, _opaque: Any) -> None:
        lost.append(count)

    def register() -> None:
        tracer.eventRegisterAny(EVENT_ID_SYSCALL, on_event, "opaque")
        tracer.eventRegisterAny(EVENT_ID_LOST, on_lost, "opaque")

    def close() -> None:
        tracer.close()
        tracer.dispatch()  # what the ring still holds

    try:
        assert tracer.backend.name == "kernel" and tracer.running
        assert tracer.backend.armed_names[:2] == ["SYSCALL", "SYSRET"]
        assert tracer.backend.armed_delivery == delivery  # as the kernel reports it
        loop.call(register)
        done = run_workload(kvm_guest.guest)
    finally:
        loop.call(close)
    assert not tracer.running
    assert threads == {loop.thread.ident}
    assert passed == {(URI, kvm_guest.dom.UUIDString(), "opaque")}
    assert lost == [] and tracer.lost == 0
    check_workload(records, done)


def test_guest_survives_the_tracer_sigkill(kvm_guest: BedDomain) -> None:
    trace = trace_cli()
    try:
        trace.wait_armed()
        busy = Busy(kvm_guest.guest)
        trace.wait_events(50)
        trace.proc.kill()
        assert trace.wait_exit() == -signal.SIGKILL
    finally:
        trace.kill()
    assert busy.result().exit_code == 0  # its getpid loop ran on through the release
    assert_given_back(kvm_guest)


def test_guest_survives_the_tracer_close(kvm_guest: BedDomain, loop: Loop) -> None:
    tracer = attach(kvm_guest.dom, backend="kernel")
    events: list[Any] = []
    try:
        loop.call(
            lambda: tracer.eventRegisterAny(
                EVENT_ID_SYSCALL, lambda _c, _d, event, _o: events.append(event), None
            )
        )
        busy = Busy(kvm_guest.guest)
        wait_for(lambda: len(events) >= 50, "50 events", timeout=GUEST_DEADLINE, interval=0.2)
    finally:
        loop.call(tracer.close)  # mid-trace: the guest is in its getpid loop
    assert not tracer.running
    assert busy.result().exit_code == 0
    assert_given_back(kvm_guest)


def test_trace_goes_on_across_a_libvirtd_restart(kvm_guest: BedDomain) -> None:
    trace = trace_cli()
    try:
        trace.wait_armed()
        kvm_guest.bed.stop_libvirtd()
        try:
            before = len(trace.stdout)
            down = run_command(kvm_guest.guest, "getpid", "3")  # no libvirtd needed
            trace.wait_events(before + 6)
        finally:
            seconds = kvm_guest.bed.start()
        _report(kvm_guest.config, f"libvirtd restarted (cached) in {seconds:.1f} s")
        kvm_guest.reconnect()
        before = len(trace.stdout)
        up = run_command(kvm_guest.guest, "getpid", "3")
        trace.wait_events(before + 6)
        assert trace.interrupt() == 0, trace.stderr
    finally:
        trace.kill()
    records = trace.records()
    for result in (down, up):
        pid = int(result.values["getpid"])
        rets = [
            r
            for r in records
            if r["direction"] == "exit" and r["nr"] == NR["getpid"] and r["ret"] == pid
        ]
        assert len(rets) == 3, result
    assert "Traceback" not in "\n".join(trace.stderr)
    assert trace.stderr[-1] == f"libvirt-nitro: {len(records)} events, 0 dropped", trace.stderr
    assert_given_back(kvm_guest)


def test_virsh_destroy_mid_trace_ends_the_tracer_with_one_line(kvm_guest: BedDomain) -> None:
    """Runs last: the domain is gone after it."""
    uuid = kvm_guest.dom.UUIDString()
    trace = trace_cli()
    try:
        trace.wait_armed()
        busy = Busy(kvm_guest.guest, count=200000)
        trace.wait_events(50)
        begin = time.monotonic()
        subprocess.run(
            ["virsh", "-c", URI, "destroy", NAME],
            check=True,
            capture_output=True,
            timeout=GUEST_DEADLINE,
        )
        _report(kvm_guest.config, f"virsh destroy mid-trace took {time.monotonic() - begin:.1f} s")
        code = trace.wait_exit()
    finally:
        trace.kill()
    busy.thread.join(GUEST_DEADLINE)
    assert isinstance(busy.outcome.get("error"), OSError), busy.outcome  # the port closed
    assert code == 1, trace.stderr
    errors = [line for line in trace.stderr if "error" in line]
    assert errors == [trace.stderr[-1]], trace.stderr
    assert errors[0].startswith(f"libvirt-nitro: error: tracing {NAME} stopped: "), errors
    assert "Traceback" not in "\n".join(trace.stderr)
    os.close(acquire_trace_lock(uuid, NAME))  # released
