"""``libvirt-nitro trace`` as a user runs it, and the guest outliving every way it can end."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from libvirt_nitro import attach
from libvirt_nitro.errors import DomainNotRunning
from libvirt_nitro.linux import syscall_name, syscall_number
from libvirt_nitro.runtime import RUN_DIR, acquire_trace_lock
from libvirt_nitro.testing.guest import TestGuest
from tests.support import (
    TraceProcess,
    require_runs_last,
    start_libvirtd,
    stop_libvirtd,
    wait_for,
)
from tests.tracing import syscalls_enabled

ROOT = Path(__file__).resolve().parents[1]
URI = "qemu:///system"
GETPID = syscall_number("getpid")


def assert_guest_given_back(guest: TestGuest, dom=None) -> None:
    """EFER.SCE back on every vCPU, processes unharmed, and nothing left holding the domain
    (*dom*: the guest's domain through another connection than the fixture's)."""
    dom = dom or guest.dom
    wait_for(lambda: syscalls_enabled(dom), "EFER.SCE restored on every vCPU", timeout=60)
    result = guest.run("sequence")
    assert result.exit_code == 0, result.output
    assert result.values["ud2_child_signal"] == str(int(signal.SIGILL))
    wait_for(lambda: _lock_free(dom.UUIDString()), "the trace lock to be released")
    wait_for(lambda: not (RUN_DIR / "gdb" / dom.UUIDString()).exists(), "the stub directory gone")
    attach(dom).close()  # a new tracer can start: no stub or breakpoint left behind


def _lock_free(uuid: str) -> bool:
    try:
        os.close(acquire_trace_lock(uuid, "test"))
    except Exception:
        return False
    return True


def test_json_lines_and_count(tcg_guest) -> None:
    trace = TraceProcess(tcg_guest.name, "--json", "--count", "12")
    try:
        trace.wait_armed()
        tcg_guest.run("getpid", "20")
        assert trace.wait_exit() == 0, trace.stderr
    finally:
        trace.kill()
    records = [json.loads(line) for line in trace.stdout]
    assert len(records) == 12
    for record in records:
        assert {"vcpu", "direction", "nr", "name", "cr3", "rip", "time"} <= record.keys()
        if record["direction"] == "enter":
            assert len(record["args"]) == 6 and "ret" not in record
        else:
            assert isinstance(record["ret"], int)
    # The guest's workload server reads its command line one byte at a time: read(0, …, 1).
    assert any(r["name"] == "read" and r["args"][0] == 0 and r["args"][2] == 1 for r in records)
    assert all(r["name"] == syscall_name(r["nr"]) for r in records if r["nr"] is not None)
    assert trace.stderr[-1] == "libvirt-nitro: 12 events, 0 dropped"
    assert_guest_given_back(tcg_guest)


def test_raw_text_output_to_a_file(tcg_guest, tmp_path) -> None:
    output = tmp_path / "trace.txt"
    trace = TraceProcess(tcg_guest.name, "-o", str(output), "--duration", "600", "--raw")
    try:
        trace.wait_armed()
        pid = tcg_guest.run("getpid", "2").values["getpid"]
        wait_for(lambda: f"getpid = {pid} " in output.read_text(), "the getpid exit line")
        trace.proc.send_signal(signal.SIGINT)
        assert trace.wait_exit() == 0
    finally:
        trace.kill()
    lines = output.read_text().splitlines()
    assert any(line.startswith("[vcpu ") and " enter getpid(0x" in line for line in lines)
    assert any(f"exit  getpid = {pid} nr={GETPID} cr3=0x" in line for line in lines)
    assert "Traceback" not in "\n".join(trace.stderr)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_guest_survives_the_tracer_ending_mid_trace(tcg_guest, signum) -> None:
    """The tracer ends (cleanly or SIGKILLed) while the guest makes system calls as fast as it
    can: the busy process finishes unharmed and the guest is given back."""
    trace = TraceProcess(tcg_guest.name, "--json")
    outcome: dict = {}
    busy = threading.Thread(target=lambda: outcome.update(result=tcg_guest.run("loop", "400")))
    try:
        trace.wait_armed()
        busy.start()
        wait_for(lambda: len(trace.stdout) >= 40, "40 events", timeout=120)
        trace.proc.send_signal(signum)
        code = trace.wait_exit()
    finally:
        trace.kill()
        busy.join(300)
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert any(
            "guard: tracer of" in line and "guest given back" in line for line in trace.stderr
        )
    else:
        assert code == 0, trace.stderr
        assert trace.stderr[-1].startswith("libvirt-nitro: ") and "events" in trace.stderr[-1]
    assert outcome["result"].exit_code == 0 and outcome["result"].values["loop_count"] == "400"
    assert_guest_given_back(tcg_guest)


def test_a_second_trace_is_refused(tcg_guest) -> None:
    tracer = attach(tcg_guest.dom)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "libvirt_nitro", "-c", URI, "trace", tcg_guest.name],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    finally:
        tracer.close()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"libvirt-nitro: error: domain {tcg_guest.name!r} is already being traced by libvirt-nitro"
    ]


@pytest.fixture
def doomed_guest(conn, guest_image):
    """A guest of its own, for a test that destroys it."""
    guest = TestGuest.start(conn, f"nitro-test-doomed-{os.getpid()}", guest_image)
    yield guest
    guest.destroy()


def test_domain_destroyed_mid_trace(doomed_guest) -> None:
    uuid = doomed_guest.dom.UUIDString()
    trace = TraceProcess(doomed_guest.name)
    busy = threading.Thread(target=lambda: _ignore_errors(doomed_guest.run, "loop", "100000"))
    try:
        trace.wait_armed()
        busy.start()
        wait_for(lambda: len(trace.stdout) >= 10, "10 events", timeout=120)
        doomed_guest.dom.destroy()
        code = trace.wait_exit()
    finally:
        trace.kill()
        busy.join(60)
    assert code == 1
    assert "Traceback" not in "\n".join(trace.stderr)
    assert trace.stderr[-1].startswith(f"libvirt-nitro: error: tracing {doomed_guest.name} stopped")
    assert _lock_free(uuid)
    assert not (RUN_DIR / "gdb" / uuid).exists()


def _ignore_errors(func, *args) -> None:
    try:
        func(*args)
    except (ConnectionError, TimeoutError, OSError):
        pass  # the guest was destroyed under it


def test_stub_socket_is_private_to_root_and_qemu(tcg_guest) -> None:
    uuid = tcg_guest.dom.UUIDString()
    tracer = attach(tcg_guest.dom)
    try:
        stub_dir = RUN_DIR / "gdb" / uuid
        qemu_uid = _uid_of(int(Path(f"/run/libvirt/qemu/{tcg_guest.name}.pid").read_text()))
        assert (stub_dir.stat().st_mode & 0o777, stub_dir.stat().st_uid) == (0o700, qemu_uid)
        assert (RUN_DIR / "gdb").stat().st_mode & 0o777 == 0o711  # traversable, not listable
        assert (RUN_DIR / "trace").stat().st_mode & 0o777 == 0o700
        assert (RUN_DIR / "trace" / f"{uuid}.lock").stat().st_mode & 0o777 == 0o600
        # An unprivileged user cannot reach the socket.
        probe = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "test",
                "-e",
                str(stub_dir / "gdb.sock"),
            ],
            timeout=30,
        )
        assert probe.returncode == 1
    finally:
        tracer.close()


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


@pytest.mark.parametrize(
    ("target", "message"),
    [("no-such-domain", "no domain with a name"), (None, "is not running")],
)
def test_trace_bad_domain_is_one_error_line(inactive_domain, target, message) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "libvirt_nitro",
            "-c",
            URI,
            "trace",
            target or inactive_domain.name(),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("libvirt-nitro: error: ") and message in lines[0]


def test_a_paused_domain_is_not_traced(tcg_guest) -> None:
    tcg_guest.dom.suspend()
    try:
        with pytest.raises(DomainNotRunning, match="is paused"):
            attach(tcg_guest.dom)
    finally:
        tcg_guest.dom.resume()
    assert tcg_guest.run("getpid", "1").exit_code == 0


def test_strace_form_names_the_guest_process(tcg_guest, tmp_path) -> None:
    """Default text output: strace's lines, attributed to the guest's pid and comm."""
    output = tmp_path / "trace.txt"
    trace = TraceProcess(tcg_guest.name, "-o", str(output), "-e", "trace=getpid,openat")
    try:
        trace.wait_armed()
        result = tcg_guest.run("sequence")
        pid = result.values["pid"]
        wait_for(
            lambda: 'openat(AT_FDCWD, "/nitro-marker", O_RDONLY) = 3' in output.read_text(),
            "the marker openat line",
            detail=lambda: output.read_text() + "\n".join(trace.stderr),
        )
        trace.proc.send_signal(signal.SIGINT)
        assert trace.wait_exit() == 0
    finally:
        trace.kill()
    lines = output.read_text().splitlines()
    mine = [line for line in lines if line.startswith(f"[pid {pid} workload] ")]
    calls = [line.split("] ", 1)[1] for line in mine]
    assert calls == [f"getpid() = {pid}"] * 4 + [
        'openat(AT_FDCWD, "/nitro-marker", O_RDONLY) = 3',
        'openat(AT_FDCWD, "/dev/null", O_WRONLY) = 3',
    ]
    # -e trace= dropped everything else, from every process.
    assert all(" getpid() = " in line or " openat(" in line for line in lines)


def test_pid_and_comm_filters(tcg_guest) -> None:
    first = tcg_guest.run("getpid", "1").values["getpid"]
    trace = TraceProcess(tcg_guest.name, "--json", "--comm", "workload")
    try:
        trace.wait_armed()
        pid = tcg_guest.run("getpid", "3").values["getpid"]
        wait_for(
            lambda: any(json.loads(line).get("ret") == int(pid) for line in trace.stdout),
            "the getpid exits",
        )
        trace.proc.send_signal(signal.SIGTERM)
        assert trace.wait_exit() == 0
    finally:
        trace.kill()
    records = [json.loads(line) for line in trace.stdout]
    assert records and {r["comm"] for r in records} == {"workload"}
    assert int(first) not in {r["pid"] for r in records}
    getpids = [r for r in records if r["name"] == "getpid" and r["direction"] == "exit"]
    assert [r["ret_decoded"] for r in getpids if r["pid"] == int(pid)] == [pid] * 3
    assert all(r["tid"] == r["pid"] for r in getpids)


def _kill_during_workload(guest: TestGuest, moment: str, events: int) -> tuple:
    """Start ``trace``, run the workload, SIGKILL the tracer at *moment* ("at once",
    "armed", or "events": after *events* lines); return (workload result, tracer stderr)."""
    trace = TraceProcess(guest.name, "--json")
    outcome: dict = {}
    busy = threading.Thread(target=lambda: outcome.update(result=guest.run("loop", "50")))
    busy.start()
    try:
        if moment != "at once":
            trace.wait_armed()
        if moment == "events":
            wait_for(
                lambda: len(trace.stdout) >= events or not busy.is_alive(),
                f"{events} events",
                timeout=120,
            )
        trace.proc.kill()
        assert trace.wait_exit() == -signal.SIGKILL
    finally:
        trace.kill()
        busy.join(300)
    return outcome.get("result"), trace.stderr


def test_tracer_sigkilled_at_random_moments(tcg_guest) -> None:
    """20 tracers SIGKILLed at random moments (while starting or arming, just armed, or
    after some events) while the guest runs its workload: the workload completes every
    time and the guard gives the guest back (or nothing was touched yet)."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    for round_ in range(20):
        moment = rng.choice(["at once", "armed", "events"])
        result, said = _kill_during_workload(tcg_guest, moment, rng.randrange(1, 40))
        where = f"round {round_}, killed {moment} (seed {seed}); tracer said {said}"
        assert result is not None and result.exit_code == 0, where
        assert result.values["loop_count"] == "50", where
        wait_for(lambda: syscalls_enabled(tcg_guest.dom), f"EFER.SCE restored: {where}", 60)
        wait_for(lambda: _lock_free(tcg_guest.dom.UUIDString()), f"the lock free: {where}", 60)
    assert_guest_given_back(tcg_guest)


def _trace_across_a_libvirtd_restart(guest: TestGuest, ends_while_down: bool) -> list[str]:
    """``trace`` while libvirtd stops and starts again; the tracer is ended (SIGINT) while
    libvirtd is down, or after it is back. Returns the tracer's stderr."""
    trace = TraceProcess(guest.name, "--json")
    try:
        trace.wait_armed()
        stop_libvirtd()
        try:
            before = len(trace.stdout)
            guest.run("getpid", "3", timeout=300)  # the control port: no libvirtd needed
            wait_for(lambda: len(trace.stdout) >= before + 6, "events with libvirtd down")
            if ends_while_down:
                trace.proc.send_signal(signal.SIGINT)
                assert trace.wait_exit() == 0, trace.stderr
        finally:
            start_libvirtd()
        if not ends_while_down:
            trace.proc.send_signal(signal.SIGINT)
            assert trace.wait_exit() == 0, trace.stderr
    finally:
        trace.kill()
    return trace.stderr


def test_libvirtd_restart_mid_cli_trace(request, tcg_guest) -> None:
    """Runs last (conftest's RUN_LAST). libvirtd restarts while ``trace`` runs: tracing goes
    on and ends cleanly, closing the gdbstub through a new connection; and a tracer that
    ends while libvirtd is down leaves its stub open, which the next tracer closes itself:
    no manual step either way."""
    require_runs_last(request)
    import libvirt

    for ends_while_down in (False, True):
        said = _trace_across_a_libvirtd_restart(tcg_guest, ends_while_down)
        assert "Traceback" not in "\n".join(said), said
        fresh = libvirt.open(URI).lookupByUUIDString(tcg_guest.dom.UUIDString())
        assert_guest_given_back(tcg_guest, fresh)  # a new trace attaches with no manual step
