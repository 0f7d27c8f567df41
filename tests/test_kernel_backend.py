"""The kernel backend on this host's stock kernel: the capability check, one clear error
that leaves the guest alone, "auto" falling back to the gdbstub, and the request structs
and ring detachment it relies on (pure units).

The kernel backend tracing for real runs in the emulated test bed with the patched modules:
tests/bed/test_kernel_backend.py, through tests/test_kernel_nitro.py.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest

from libvirt_nitro import attach
from libvirt_nitro.abi.event import Event
from libvirt_nitro.abi.ring import Ring
from libvirt_nitro.attachment import BACKENDS, choose_backend
from libvirt_nitro.domain import find_kvm_fds, resolve
from libvirt_nitro.errors import NoNitroKvm
from libvirt_nitro.ioctl import ffi, lib
from libvirt_nitro.linux import syscall_number
from libvirt_nitro.nitrokvm import (
    TRAP_ALL,
    TRAP_SYSCALL,
    TRAP_SYSRET,
    KernelBackend,
    attach_request,
    continue_request,
    eventfd_request,
    nitro_abi_version,
    require_nitro,
    trap_config,
    trap_names,
)
from libvirt_nitro.nitrokvm.nitrofd import _map_over, _privatize
from libvirt_nitro.runtime import acquire_trace_lock
from tests.support import require
from tests.tracing import run_traced_events

ROOT = Path(__file__).resolve().parents[1]
URI = "qemu:///system"
GETPID = syscall_number("getpid")


@pytest.fixture
def stock_kvm() -> None:
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "/dev/kvm present and read-write")


def _bytes(cdata) -> bytes:
    return bytes(ffi.buffer(cdata))


# ------------------------------------------------------------------ request structs
def test_attach_request_is_versioned_and_zero_padded() -> None:
    req = attach_request(7, 12)
    assert (req.version, req.size) == (lib.KVM_NITRO_ABI_VERSION, 64)
    assert (req.flags, req.pidfd, req.vm_fd) == (0, 7, 12)
    assert _bytes(req)[16:] == bytes(48)  # reserved[6]
    on_vm_fd = attach_request()
    assert (on_vm_fd.pidfd, on_vm_fd.vm_fd) == (-1, -1)


def test_trap_config_layout_and_filter_bitmap() -> None:
    cfg = trap_config(TRAP_SYSCALL | TRAP_SYSRET, syscalls=[0, 63, 64, 511], ring_slots=8)
    assert (cfg.version, cfg.size) == (lib.KVM_NITRO_ABI_VERSION, 128)
    assert (cfg.traps, cfg.delivery, cfg.ring_slots, cfg.pad0) == (3, 0, 8, 0)
    assert cfg.flags == lib.KVM_NITRO_FILTER_ENABLE
    assert list(cfg.syscall_filter) == [1 | 1 << 63, 1, 0, 0, 0, 0, 0, 1 << 63]
    assert _bytes(cfg)[88:] == bytes(40)  # reserved[5]
    unfiltered = trap_config()
    assert unfiltered.traps == TRAP_ALL and unfiltered.flags == 0
    assert _bytes(unfiltered)[4:] == bytes([TRAP_ALL, 0, 0, 0]) + bytes(124 - 4)
    assert trap_config(0, above=True).flags == (
        lib.KVM_NITRO_FILTER_ENABLE | lib.KVM_NITRO_FILTER_ABOVE
    )
    for bad in ({"traps": 0x10}, {"ring_slots": 6}, {"ring_slots": 1 << 17}, {"syscalls": [512]}):
        with pytest.raises(ValueError):
            trap_config(**bad)


def test_eventfd_and_continue_requests() -> None:
    assert _bytes(eventfd_request(-1)) == b"\xff\xff\xff\xff" + bytes(12)
    cont = continue_request(41, 3, skip=True)
    assert (cont.seq, cont.vcpu_id, cont.flags) == (41, 3, lib.KVM_NITRO_CONTINUE_F_SKIP)
    assert _bytes(cont)[16:] == bytes(16)
    assert trap_names(TRAP_ALL) == ["SYSCALL", "SYSRET", "SYSENTER", "SYSEXIT"]
    assert trap_names(TRAP_SYSCALL | TRAP_SYSRET) == ["SYSCALL", "SYSRET"]


def _references(path: Path) -> list[str]:
    """This process's fds and mappings that refer to *path*."""
    fds = [f"fd {fd}" for fd in os.listdir("/proc/self/fd") if _link(fd) == str(path)]
    maps = [line for line in Path("/proc/self/maps").read_text().splitlines() if str(path) in line]
    return fds + maps


def _link(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def test_ring_mapping_and_its_release(tmp_path) -> None:
    """What map_ring and close do to the kernel's ring, on a shared file mapping instead:
    mapped without keeping an fd, then moved to private memory at the same address, the
    Ring reading on, nothing left that refers to the file (for the nitro fd: nothing that
    keeps the traps)."""
    source = Ring(8)
    for rax in range(5):
        source.produce(lambda ev, rax=rax: setattr(ev.regs, "rax", rax))
    backing = tmp_path / "ring"
    backing.write_bytes(bytes(source.buffer))
    shared = mmap.mmap(-1, len(source.buffer))
    with open(backing, "r+b") as file:
        _map_over(shared, file.fileno(), 0)
    assert len(_references(backing)) == 1  # the mapping, no fd
    ring = Ring.from_buffer(shared)
    raws, _ = ring.drain(2)
    assert [Event(r).regs.rax for r in raws] == [0, 1]
    _privatize(shared)
    assert _references(backing) == []
    raws, lost = ring.drain()
    assert [Event(r).seq for r in raws] == [2, 3, 4] and lost == 0
    assert ring.produce(lambda ev: setattr(ev.regs, "rax", 99))
    on_disk = ffi.from_buffer("struct kvm_nitro_ring_header *", bytearray(backing.read_bytes()))
    assert (on_disk.producer, on_disk.consumer) == (5, 2)  # the drains after it: not written
    assert (ring.header.producer, ring.header.consumer) == (6, 5)
    del ring
    shared.close()  # unmaps the private copy


# ------------------------------------------------------------------ this stock host
def test_capability_is_absent_here(stock_kvm) -> None:
    assert nitro_abi_version() == 0
    with pytest.raises(NoNitroKvm) as info:
        require_nitro()
    message = str(info.value)
    assert "\n" not in message
    assert "KVM_CAP_NITRO" in message and "kernel/" in message and "--backend gdbstub" in message
    assert nitro_abi_version("/nonexistent/kvm") == 0
    with pytest.raises(NoNitroKvm, match="there is no /nonexistent/kvm"):
        require_nitro("/nonexistent/kvm")


def test_kernel_backend_on_a_kvm_guest_is_one_error_and_touches_nothing(stock_kvm, kvm_guest):
    dom = kvm_guest.dom
    process = resolve(dom, kvm_fds=False)
    fds_before = find_kvm_fds(process.pid)
    assert "anon_inode:kvm-vm" in fds_before  # a real KVM domain: only the capability stops us
    with pytest.raises(NoNitroKvm) as info:
        attach(dom, backend="kernel")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("the kernel backend needs the Nitro KVM extension")
    # The same from a plain (pid, vm_fd) pair, as the in-bed tests build it.
    backend = KernelBackend(process.pid, fds_before["anon_inode:kvm-vm"])
    with pytest.raises(NoNitroKvm):
        backend.open()
    assert backend.ring is None and not backend.running
    backend.stop()  # idempotent, nothing to release
    # Untouched: still running, same QEMU, same fds, and no trace lock left behind.
    assert dom.state()[0] == 1
    assert resolve(dom, kvm_fds=False).pid == process.pid
    assert find_kvm_fds(process.pid) == fds_before
    os.close(acquire_trace_lock(dom.UUIDString(), dom.name()))
    assert choose_backend("auto", process) == "gdbstub"


def test_auto_traces_through_the_gdbstub_here(libvirt_loop, tcg_guest) -> None:
    assert BACKENDS == ("gdbstub", "kernel", "auto")
    tracer = attach(tcg_guest.dom, backend="auto")
    try:
        assert tracer.backend.name == "gdbstub"
        events, result = run_traced_events(
            libvirt_loop, tracer, lambda: tcg_guest.run("getpid", "3")
        )
    finally:
        tracer.close()
    pid = int(result.values["getpid"])
    exits = [e for e in events if e.direction == "exit" and e.regs.rax == pid]
    assert len(exits) >= 3
    assert any(e.direction == "enter" and e.regs.rax == GETPID for e in events)
    with pytest.raises(ValueError, match="unknown backend"):
        attach(tcg_guest.dom, backend="nitro")


def test_cli_kernel_backend_on_a_stock_kernel_is_one_error_line(stock_kvm, kvm_guest) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "libvirt_nitro", "-c", URI, "trace", "--backend", "kernel"]
        + [kvm_guest.name],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("libvirt-nitro: error: the kernel backend needs the Nitro KVM")
    assert "--backend gdbstub" in lines[0]
    assert done.stdout == ""
    assert kvm_guest.dom.state()[0] == 1
