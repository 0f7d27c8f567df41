"""Zero-touch tracing against the real libvirtd: the hook installed in /etc/libvirt/hooks, a
test guest started with <nitro:trace>, traced from its start with no command typed, the
element removed and added live, a broken element, and libvirtd restarted mid-trace.

The tests of this module share one guest and run in file order; the libvirtd restart is the
last one (and must be the last of the session: it closes every libvirt connection).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libvirt_nitro.runtime import RUN_DIR
from libvirt_nitro.service import installer
from libvirt_nitro.service.hook import LOG_DIR
from libvirt_nitro.service.metadata import NAMESPACE
from libvirt_nitro.service.status import holder_pid, signal_holder
from libvirt_nitro.testing.guest import (
    ControlPort,
    GuestImage,
    TestGuest,
    console_log_path,
    control_socket_path,
    domain_xml,
    prepare_run_dir,
)
from tests.support import require, require_runs_last, start_libvirtd, stop_libvirtd, wait_for
from tests.tracing import syscalls_enabled

ROOT = Path(__file__).resolve().parents[1]
URI = "qemu:///system"
#: Attaching waits for the guest kernel; under TCG on 2 loaded cores boot + arm can be slow.
TRACED_TIMEOUT = 240.0
#: Booting a guest traced from its start (s): every system call of its init is trapped.
BOOT_TIMEOUT = 600.0


def service(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a service verb as a user would (``python -m libvirt_nitro.service``)."""
    done = subprocess.run(
        [sys.executable, "-m", "libvirt_nitro.service", "-c", URI, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def trace_element(output: Path, extra: str = "", decode: str = "raw") -> str:
    """A <nitro:trace> writing to *output*; raw by default: decoding reads guest memory at
    every trap, which slows a TCG guest traced from its boot several times over."""
    return (
        f'<nitro:trace xmlns:nitro="{NAMESPACE}">'
        f'<nitro:output path="{output}" decode="{decode}" max-bytes="1048576" max-files="4"/>'
        f"{extra}"
        "</nitro:trace>"
    )


def start_guest(conn: Any, name: str, image: GuestImage, element: str) -> TestGuest:
    """Boot a TCG test guest whose domain XML carries *element*; wait for its workload.

    A traced guest reads its control port one byte per trapped read(2), slowly on a loaded
    host, so readiness is a command re-sent every 30 s (ControlPort.wait_ready's ping every
    second could outrun it) once the console says the server is about to listen.
    """
    prepare_run_dir()
    control_socket_path(name).unlink(missing_ok=True)
    dom = conn.createXML(domain_xml(name, image, metadata=element), 0)
    guest = TestGuest(dom, None)
    try:
        wait_for(
            lambda: "serving on ttyS1" in _text(console_log_path(name)),
            "the guest's workload server",
            timeout=BOOT_TIMEOUT,
        )
        guest.port = ControlPort(control_socket_path(name))
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:  # the console line comes just before the server opens the port
            try:
                assert guest.run("getpid", "1", timeout=30).exit_code == 0
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
    except BaseException:
        guest.destroy()
        raise
    return guest


def records(path: Path) -> list[dict]:
    """The JSON lines written so far (rotated files included, oldest first)."""
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    lines = []
    for file in [*files, path]:
        if file.exists():
            lines += [json.loads(line) for line in file.read_text().splitlines() if line]
    return lines


def names(path: Path) -> list[str]:
    return [record["name"] for record in records(path)]


def status_of(uuid: str) -> dict | None:
    states = json.loads(service("status", "--json").stdout)
    return next((state for state in states if state["uuid"] == uuid), None)


def assert_given_back(guest: TestGuest, uuid: str) -> None:
    wait_for(lambda: holder_pid(uuid) is None, "the server to exit", timeout=60)
    wait_for(lambda: syscalls_enabled(guest.dom), "EFER.SCE back on every vCPU", timeout=60)
    assert not (RUN_DIR / "gdb" / uuid).exists()
    result = guest.run("sequence")
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def hook(conn: Any) -> Iterator[Path]:
    """libvirt-nitro's hook in /etc/libvirt/hooks/qemu.d, libvirtd reloaded so that it runs
    it; removed afterwards, with the watcher the hook started."""
    require(Path("/run/libvirtd.pid").exists(), "libvirtd started as `libvirtd -d`")
    path = installer.hook_path()
    require(
        not path.exists() or installer.MARKER in path.read_text(),
        f"{path} free for libvirt-nitro's hook",
    )
    installed = service("install-hook", "--reload")
    assert "hook written to" in installed.stderr
    try:
        yield path
    finally:
        installer.uninstall()
        signal_holder("watch", wait=10)


@pytest.fixture(scope="module")
def guest(conn: Any, guest_image: GuestImage, hook: Path, tmp_path_factory) -> Iterator[Any]:
    """A TCG guest started with <nitro:trace> (its output in a temporary directory)."""
    output = tmp_path_factory.mktemp("svc") / "events.jsonl"
    name = f"nitro-test-svc-{os.getpid()}"
    started = start_guest(conn, name, guest_image, trace_element(output))
    started.output = output
    started.uuid = started.dom.UUIDString()
    try:
        yield started
    finally:
        started.destroy()
        signal_holder(started.uuid, wait=30)


def test_hook_script_execs_the_service(hook: Path) -> None:
    text = hook.read_text()
    assert text.startswith("#!/bin/sh\n") and installer.MARKER in text
    assert f"'{sys.executable}' -m libvirt_nitro.service hook" in text
    assert os.stat(hook).st_mode & 0o111


def test_foreign_hook_is_not_clobbered(tmp_path: Path) -> None:
    foreign = installer.hook_path(tmp_path)
    foreign.parent.mkdir(parents=True)
    foreign.write_text("#!/bin/sh\nexit 0\n")
    done = service("install-hook", "--hooks-dir", str(tmp_path), check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("libvirt-nitro: error: ") and "not written by" in done.stderr
    assert foreign.read_text() == "#!/bin/sh\nexit 0\n"


def test_domain_is_traced_from_its_start(guest) -> None:
    """No command typed: the hook's server traces the guest into the element's file. (Its
    boot's own calls are traced only if arming wins the race with the end of the boot, so
    the guest is made to call getpid once the server says it traces.)"""
    wait_for(
        lambda: (status_of(guest.uuid) or {}).get("state") == "tracing",
        "the server to trace the guest",
        timeout=TRACED_TIMEOUT,
        interval=1.0,
    )
    guest.run("getpid", "7", timeout=300)
    wait_for(
        lambda: names(guest.output).count("getpid") >= 14,
        "7 getpid entries and exits in the file",
        timeout=60,
    )
    for record in records(guest.output)[-20:]:
        assert {"vcpu", "direction", "nr", "name", "cr3", "rip", "time"} <= record.keys()
    pid = holder_pid(guest.uuid)
    assert pid is not None
    assert f"serve {guest.uuid}" in " ".join(Path(f"/proc/{pid}/cmdline").read_text().split("\0"))


def test_status_lists_the_domain(guest) -> None:
    state = wait_for(lambda: status_of(guest.uuid), "the domain in status")
    assert state["name"] == guest.name and state["backend"] == "gdbstub"
    assert state["state"] == "tracing" and state["output"] == str(guest.output)
    wait_for(lambda: status_of(guest.uuid)["events"] > 0, "events counted in status")
    assert status_of(guest.uuid)["dropped"] == 0
    table = service("status").stdout
    assert guest.name in table and str(guest.output) in table


def test_second_tracer_is_refused(guest) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "libvirt_nitro", "-c", URI, "trace", guest.name, "--count", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 1
    assert "already being traced" in done.stderr
    assert holder_pid(guest.uuid) is not None  # the service goes on


def test_config_shows_the_element(guest) -> None:
    shown = service("config", guest.name).stdout
    assert f'xmlns:nitro="{NAMESPACE}"' in shown and str(guest.output) in shown


def test_removing_the_element_stops_tracing(guest) -> None:
    removed = service("config", guest.name, "--remove", "--live")
    assert "removed" in removed.stderr
    assert_given_back(guest, guest.uuid)
    before = len(records(guest.output))
    guest.run("getpid", "5")
    assert len(records(guest.output)) == before
    assert service("config", guest.name, check=False).returncode == 1


def test_adding_the_element_to_a_running_domain_starts_tracing(guest, tmp_path: Path) -> None:
    """The watcher (started by the hook) sees the metadata-change event; the element's
    filter selects calls by name and processes by command name, as -e and --comm do."""
    assert holder_pid("watch") is not None
    element = tmp_path / "trace.xml"
    element.write_text(
        trace_element(
            guest.output,
            '<nitro:syscalls><nitro:syscall name="getpid"/></nitro:syscalls>'
            '<nitro:processes><nitro:process comm="workload"/></nitro:processes>',
            decode="strace",
        )
    )
    before = len(records(guest.output))
    service("config", guest.name, "--set", str(element), "--live")
    wait_for(lambda: holder_pid(guest.uuid), "the watcher to spawn a server", timeout=60)
    wait_for(lambda: (status_of(guest.uuid) or {}).get("state") == "tracing", "tracing", 120)
    guest.run("getpid", "4", timeout=300)
    wait_for(lambda: len(records(guest.output)) - before >= 8, "getpid events", timeout=60)
    written = records(guest.output)[before:]
    assert {record["name"] for record in written} == {"getpid"}
    assert {record["comm"] for record in written} == {"workload"}


def test_broken_element_does_not_stop_the_domain(conn, guest_image, hook, tmp_path) -> None:
    name = f"nitro-test-svc-bad-{os.getpid()}"
    broken = f'<nitro:trace xmlns:nitro="{NAMESPACE}" mode="fast"/>'
    bad = start_guest(conn, name, guest_image, broken)
    try:
        assert bad.run("getpid", "1", timeout=300).exit_code == 0
        log = LOG_DIR / "hook.log"
        line = wait_for(
            lambda: next((x for x in _text(log).splitlines() if name in x), None),
            "the hook to log the broken element",
        )
        assert line.startswith("<3>") and "line " in line and "rule: invalidattr" in line
        assert holder_pid(bad.dom.UUIDString()) is None
    finally:
        bad.destroy()


def test_stopping_the_domain_ends_its_server(conn, guest_image, hook, tmp_path) -> None:
    """The hook's ``stopped`` tells the server the domain is gone: it writes what it holds
    and exits at once, without waiting on the dead QEMU or on libvirtd. (This guest uses
    the default decoding: its events name the guest process.)"""
    name = f"nitro-test-svc-stop-{os.getpid()}"
    output = tmp_path / "events.jsonl"
    doomed = start_guest(conn, name, guest_image, trace_element(output, decode="strace"))
    uuid = doomed.dom.UUIDString()
    try:
        # its boot's calls race with arming (the guest may be idle by then): it is made to
        # call getpid once the server traces
        wait_for(
            lambda: (status_of(uuid) or {}).get("state") == "tracing",
            "the server to trace the guest",
            timeout=TRACED_TIMEOUT,
            interval=1.0,
        )
        assert holder_pid(uuid) is not None
        doomed.run("getpid", "2", timeout=300)
        getpids = wait_for(
            lambda: [r for r in records(output) if r["name"] == "getpid"], "getpid events", 60
        )
        assert all(r.get("comm") and r.get("pid") for r in getpids), getpids
    finally:
        doomed.destroy()
    wait_for(lambda: holder_pid(uuid) is None, "the server to exit", timeout=30)
    log = _text(LOG_DIR / f"serve-{name}.log").splitlines()
    assert any("stopping: the domain stopped" in line for line in log), log
    assert log[-1].startswith("<6>") and log[-1].endswith(" 0 arguments not decoded"), log
    assert status_of(uuid) is None


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_libvirtd_restart_mid_trace(request, guest) -> None:
    """Runs last: libvirtd is stopped and started again (`libvirtd -d`, as
    scripts/setup-host does) while the service traces; tracing goes on, the server
    reconnects, and the metadata-change event still reaches it afterwards."""
    require_runs_last(request)
    import libvirt

    server = holder_pid(guest.uuid)
    assert server is not None, "the previous test left the guest traced"
    before = len(records(guest.output))
    stop_libvirtd()
    try:
        # the control port and the gdbstub do not go through libvirtd
        guest.run("getpid", "3", timeout=300)
        wait_for(lambda: len(records(guest.output)) - before >= 6, "events with libvirtd down")
    finally:
        start_libvirtd()
    wait_for(lambda: (status_of(guest.uuid) or {}).get("reconnects", 0) >= 1, "reconnect", 60)
    assert holder_pid(guest.uuid) == server
    before = len(records(guest.output))
    guest.run("getpid", "3", timeout=300)
    wait_for(lambda: len(records(guest.output)) - before >= 6, "events after the restart")
    # The old connection is dead: the guest from a new one, for the rest of the checks.
    fresh = libvirt.open(URI)
    guest.dom = fresh.lookupByUUIDString(guest.uuid)
    service("config", guest.name, "--remove", "--live")
    assert_given_back(guest, guest.uuid)
