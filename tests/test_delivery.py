"""Nitro events delivered to eventRegisterAny callbacks on libvirt's default event
loop (virEventRegisterDefaultImpl + virEventRunDefaultImpl), produced by the
userspace Nitro cycle on a real-KVM test VM."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import libvirt_nitro
from libvirt_nitro.errors import NitroError
from libvirt_nitro.ioctl import lib
from libvirt_nitro.testing.kvmvm import NitroCycle, TestVm
from libvirt_nitro.tracer import EVENT_ID_LOST, EVENT_ID_SYSCALL, Tracer
from tests.support import require, wait_for

ROOT = Path(__file__).resolve().parents[1]


def test_no_event_loop_is_a_clear_error() -> None:
    """Run in a fresh interpreter: no event loop implementation registered yet."""
    code = (
        "import libvirt_nitro\n"
        "from libvirt_nitro.errors import NoEventLoop\n"
        "t = libvirt_nitro.Tracer()\n"
        "try:\n"
        "    t.eventRegisterAny(libvirt_nitro.EVENT_ID_SYSCALL, lambda *a: None, None)\n"
        "except NoEventLoop as e:\n"
        "    print('NoEventLoop:', e)\n"
        "t.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("NoEventLoop:") and "virEventRegisterDefaultImpl" in out


def test_public_names() -> None:
    assert libvirt_nitro.EVENT_ID_SYSCALL == EVENT_ID_SYSCALL
    assert libvirt_nitro.EVENT_ID_LOST == EVENT_ID_LOST
    assert libvirt_nitro.Tracer is Tracer


@pytest.fixture(scope="module")
def event_loop():
    """libvirt's default event loop, run by the test thread, woken every 50 ms."""
    import libvirt

    libvirt.virEventRegisterDefaultImpl()
    timer = libvirt.virEventAddTimeout(50, lambda timer, opaque: None, None)
    yield libvirt
    libvirt.virEventRemoveTimeout(timer)


def _run_until(libvirt, cond, what: str, timeout: float = 30.0) -> None:
    def probe() -> bool:
        libvirt.virEventRunDefaultImpl()
        return cond()

    wait_for(probe, what, timeout=timeout, interval=0)


@pytest.fixture
def test_conn(event_loop):
    conn = event_loop.open("test:///default")
    yield conn
    conn.close()


def test_unknown_ids_rejected(event_loop) -> None:
    with Tracer() as tracer:
        with pytest.raises(NitroError):
            tracer.eventRegisterAny(99, lambda *a: None)
        cid = tracer.eventRegisterAny(EVENT_ID_SYSCALL, lambda *a: None)
        tracer.eventDeregisterAny(cid)
        with pytest.raises(NitroError):
            tracer.eventDeregisterAny(cid)


def test_callbacks_get_kvm_events_on_the_loop_thread(event_loop, test_conn) -> None:
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "/dev/kvm present and read-write")
    dom = test_conn.lookupByName("test")
    got: list[tuple] = []
    once: list = []
    loop_thread = threading.get_ident()

    def on_syscall(conn, d, event, opaque) -> None:
        got.append((conn, d, event, opaque, threading.get_ident()))

    with TestVm() as tvm:
        cycle = NitroCycle(tvm)
        tracer = Tracer(test_conn, dom, backend=cycle)
        try:
            cid = tracer.eventRegisterAny(EVENT_ID_SYSCALL, on_syscall, "my-opaque")
            assert isinstance(cid, int)

            def only_once(conn, d, event, opaque) -> None:
                once.append(event.seq)
                tracer.eventDeregisterAny(opaque[0])  # inside dispatch: deferred

            box: list[int] = []
            box.append(tracer.eventRegisterAny(EVENT_ID_SYSCALL, only_once, box))
            tracer.start()
            _run_until(event_loop, lambda: len(got) >= 200, "200 syscall callbacks")
            tracer.eventDeregisterAny(cid)
            n = len(got)
            _run_until(event_loop, lambda: cycle.events > n + 10, "more events")
            event_loop.virEventRunDefaultImpl()
            assert len(got) == n, "a deregistered callback was called"
        finally:
            tracer.close()
        assert cycle.error is None, cycle.error
        syms = tvm.symbols

    assert len(once) == 1
    for i, (conn, d, event, opaque, thread) in enumerate(got):
        assert conn is test_conn and d is dom and opaque == "my-opaque"
        assert thread == loop_thread
        assert event.seq == i and event.regs.rax == i
        assert event.regs.rip == syms["syscall_insn"]
        assert event.regs.lstar == syms["syscall_entry"]
        assert event.type_name == "syscall" and event.direction == "enter"
        assert len(event.raw) == 384 and event.vcpu == 0


def test_overflow_reported_to_callbacks(event_loop) -> None:
    require(os.access("/dev/kvm", os.R_OK | os.W_OK), "/dev/kvm present and read-write")
    got: list = []
    lost: list[int] = []
    with TestVm() as tvm:
        cycle = NitroCycle(tvm, max_events=50)
        with Tracer(backend=cycle, slot_count=8) as tracer:
            tracer.eventRegisterAny(EVENT_ID_SYSCALL, lambda c, d, e, o: got.append(e))
            tracer.eventRegisterAny(EVENT_ID_LOST, lambda c, d, n, o: lost.append(n))
            tracer.start()
            # the loop does not run while the producer fills the ring
            wait_for(lambda: cycle.events >= 50, "50 trapped syscalls")
            _run_until(event_loop, lambda: len(got) >= 8 and lost, "delivery")
            assert tracer.lost == 42
        assert cycle.error is None, cycle.error
    assert sum(lost) == 42
    assert [e.seq for e in got] == list(range(8))
    assert lib.KVM_NITRO_ABI_VERSION == got[0].version


def test_import_without_the_extension(tmp_path: Path) -> None:
    """`import libvirt_nitro` works without the cffi extension; using what needs it
    raises ImportError naming the remedy."""
    import shutil

    shutil.copytree(ROOT / "libvirt_nitro", tmp_path / "libvirt_nitro")
    for so in (tmp_path / "libvirt_nitro" / "ioctl").glob("_kvm_cffi*"):
        so.unlink()
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import libvirt_nitro\n"
        f"assert libvirt_nitro.__file__.startswith({str(tmp_path)!r}), libvirt_nitro.__file__\n"
        "assert libvirt_nitro.EVENT_ID_SYSCALL == 0\n"
        "try:\n"
        "    libvirt_nitro.Tracer\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("ImportError:") and "pip install" in out
