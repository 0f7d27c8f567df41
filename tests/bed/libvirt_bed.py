"""libvirt inside the emulated test bed: libvirtd and virtlogd of the host's installation, and
libvirt's default event loop in a thread.

The bed's init chroots into the host's root, shared read-only over 9p, with tmpfs on /tmp and
/run. :class:`LibvirtBed` adds what libvirtd needs there (DESIGN.md §4, "The bed can run QEMU
and libvirtd"): tmpfs on ``/var/lib/libvirt``, ``/var/cache/libvirt`` and ``/var/log``; a
writable copy of ``/etc/libvirt`` bound over it, without hooks, persistent domains and
autostart networks, with ``namespaces = [ ]`` in ``qemu.conf`` (QEMU's private /dev would
lack /dev/kvm); ``/dev/kvm`` group ``kvm`` mode 0660, as ``scripts/setup-host`` sets it.

Probing QEMU's capabilities (at the first domain) costs libvirtd 10-20 s in the bed, 30-55 s
on a loaded host. ``kernel/testbed/run`` names
a host cache directory on the kernel command line (``nitro_libvirt_cache=DIR``); its files
seed ``/var/cache/libvirt/qemu/capabilities`` (libvirtd checks them itself: QEMU's and its
own binaries, the kernel, the CPU), and files libvirtd wrote anew go to the results share
(:data:`WRITE_BACK`), which ``run`` copies into DIR once the machine is off.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "LibvirtBed",
    "Loop",
    "ShutdownWatch",
    "URI",
    "CAPABILITIES",
    "GUEST_CPUSET",
    "WRITE_BACK",
]

URI = "qemu:///system"
#: Where a KVM domain of the bed runs (``<vcpu cpuset>``): all its vCPUs, and its QEMU, on
#: one of the bed's two CPUs. Spread over both, a traced guest (an SVM exit per system
#: call) triple-faulted within minutes, its RIP then the bed kernel's own: the instruction
#: after VMRUN in __svm_vcpu_run (TCG's nested SVM, QEMU 7.2, mixing the two levels' state).
GUEST_CPUSET = "1"
#: libvirtd's cache of QEMU's capabilities (one XML file per QEMU binary).
CAPABILITIES = Path("/var/cache/libvirt/qemu/capabilities")
#: Where capabilities probed in this boot go for ``kernel/testbed/run`` to keep (the
#: writable results share that init mounts on /run/results).
WRITE_BACK = Path("/run/results/libvirt-cache/qemu-capabilities")
#: The kernel command line parameter naming the seed (a host directory, read-only here).
CACHE_PARAM = "nitro_libvirt_cache"
#: Directories libvirt writes to, each given a tmpfs.
STATE_DIRS = ("/var/lib/libvirt", "/var/cache/libvirt", "/var/log")
ETC = Path("/etc/libvirt")
#: What is removed from the copy of /etc/libvirt: hooks (the host's libvirt-nitro hook
#: among them), persistent domains, autostarted domains, networks and pools.
ETC_REMOVED = (
    "hooks/*",
    "qemu/*.xml",
    "qemu/autostart/*",
    "qemu/networks/autostart/*",
    "storage/autostart/*",
)
#: Seconds for libvirtd to answer: 1-4 s measured (it probes QEMU later, at the first domain).
START_DEADLINE = 240.0
#: Seconds for a daemon to exit on SIGTERM.
STOP_DEADLINE = 60.0


def _cache_seed() -> Path | None:
    """The host directory of cached capabilities named on the kernel command line."""
    for word in Path("/proc/cmdline").read_text().split():
        key, _, value = word.partition("=")
        if key == CACHE_PARAM and value:
            return Path(value)
    return None


def _pid(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class LibvirtBed:
    """libvirtd and virtlogd set up and run in the bed; *work* is a writable directory (on
    the bed's tmpfs) for the copy of /etc/libvirt.

    :ivar timings: seconds of each step, for the report (``libvirtd_start``, ...).
    :ivar cached: whether libvirtd found valid capabilities in the seeded cache.
    """

    def __init__(self, work: Path) -> None:
        self.work = work
        self.timings: dict[str, float] = {}
        self.cached = False
        self.seed = _cache_seed()
        self._mounts: list[str] = []
        self._kvm_stat: os.stat_result | None = None

    # -------------------------------------------------------------- set-up
    def prepare(self) -> None:
        """Mounts, the copy of /etc/libvirt, /dev/kvm, the seeded capabilities."""
        for directory in STATE_DIRS:
            self._mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", directory)
        Path("/var/log/libvirt").mkdir(mode=0o700)  # virtlogd does not create it
        etc = self.work / "etc-libvirt"
        shutil.copytree(ETC, etc, symlinks=True)
        for pattern in ETC_REMOVED:
            for path in etc.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        with open(etc / "qemu.conf", "a") as conf:
            conf.write("\n# the test bed: QEMU keeps the real /dev (/dev/kvm)\nnamespaces = [ ]\n")
        self._mount("--bind", str(etc), str(ETC))
        self._kvm_stat = os.stat("/dev/kvm")
        shutil.chown("/dev/kvm", group="kvm")
        os.chmod("/dev/kvm", 0o660)
        CAPABILITIES.mkdir(parents=True, mode=0o755)
        if self.seed is not None and self.seed.is_dir():
            for cached in self.seed.glob("*.xml"):
                shutil.copy(cached, CAPABILITIES / cached.name)
                os.chmod(CAPABILITIES / cached.name, 0o600)

    def _mount(self, *args: str) -> None:
        subprocess.run(["mount", *args], check=True, timeout=60, capture_output=True)
        self._mounts.append(args[-1])

    # -------------------------------------------------------------- daemons
    def start(self) -> float:
        """Start virtlogd (if not running) and libvirtd; return the seconds until libvirtd
        answered on :data:`URI`.

        :raises TimeoutError: it did not within :data:`START_DEADLINE`.
        """
        if _pid("/run/virtlogd.pid") is None or not _alive(_pid("/run/virtlogd.pid") or 0):
            subprocess.run(["virtlogd", "-d"], check=True, timeout=60)
        begin = time.monotonic()
        subprocess.run(["libvirtd", "-d"], check=True, timeout=60)
        self._wait_answers(begin + START_DEADLINE)
        return time.monotonic() - begin

    def _wait_answers(self, deadline: float) -> None:
        """Until ``virsh uri`` succeeds: one call blocks until libvirtd has initialised its
        drivers (its socket exists before); retried while the socket is not there yet."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"libvirtd did not answer on {URI} within {START_DEADLINE} s")
            try:
                done = subprocess.run(
                    ["virsh", "-c", URI, "uri"], capture_output=True, text=True, timeout=left
                )
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0:
                return
            time.sleep(1.0)

    def stop_libvirtd(self) -> None:
        """SIGTERM libvirtd and wait until it has exited (its domains run on)."""
        pid = _pid("/run/libvirtd.pid")
        if pid is None or not _alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE
        while _alive(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"libvirtd {pid} did not exit within {STOP_DEADLINE} s")
            time.sleep(0.2)

    def save_capabilities(self) -> bool:
        """Copy the capabilities libvirtd wrote anew to :data:`WRITE_BACK`; return whether
        libvirtd used the seeded ones as they were (a warm start)."""
        fresh = sorted(CAPABILITIES.glob("*.xml"))
        seeded = self.seed is not None and self.seed.is_dir()
        same = (
            seeded
            and bool(fresh)
            and all(
                (self.seed / f.name).is_file() and filecmp.cmp(f, self.seed / f.name, False)
                for f in fresh
            )
        )
        if fresh and not same and WRITE_BACK.parent.parent.is_dir():
            WRITE_BACK.mkdir(parents=True, exist_ok=True)
            for path in fresh:
                shutil.copy(path, WRITE_BACK / path.name)
        return same

    def close(self) -> None:
        """Stop libvirtd and virtlogd, undo the mounts and /dev/kvm's mode."""
        try:
            self.stop_libvirtd()
            pid = _pid("/run/virtlogd.pid")
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGTERM)
        finally:
            for target in reversed(self._mounts):
                subprocess.run(["umount", "-l", target], timeout=60, capture_output=True)
            self._mounts = []
            if self._kvm_stat is not None:
                os.chown("/dev/kvm", -1, self._kvm_stat.st_gid)
                os.chmod("/dev/kvm", self._kvm_stat.st_mode & 0o7777)


class Loop:
    """libvirt's default event loop, run by a thread of its own; *deadline* bounds
    :meth:`call` and :meth:`close` (seconds)."""

    def __init__(self, deadline: float = 120.0) -> None:
        import libvirt

        self.libvirt = libvirt
        self.deadline = deadline
        libvirt.virEventRegisterDefaultImpl()
        self._stop = threading.Event()
        # wakes the loop, so that it sees _stop
        self._timer = libvirt.virEventAddTimeout(50, lambda *_: None, None)
        self.thread = threading.Thread(target=self._run, name="libvirt-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.libvirt.virEventRunDefaultImpl()

    def call(self, func: Callable[[], Any]) -> Any:
        """Run *func* on the loop thread (where the tracer dispatches) and return its
        result: a tracer is closed there, not under a running dispatch."""
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def once(timer: int, _opaque: Any) -> None:
            self.libvirt.virEventRemoveTimeout(timer)
            try:
                outcome["value"] = func()
            except BaseException as exc:  # re-raised in the caller
                outcome["error"] = exc
            done.set()

        self.libvirt.virEventAddTimeout(0, once, None)
        assert done.wait(self.deadline), "the event loop thread did not run the call"
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(self.deadline)
        self.libvirt.virEventRemoveTimeout(self._timer)


class ShutdownWatch:
    """KVM's ``kvm_exit`` tracepoint in the bed, kept to SVM shutdown exits: a guest that
    triple-faulted (QEMU then ends it: libvirt destroys a domain whose guest reset or shut
    down, with nothing on its console). :meth:`report` names where each one happened;
    an address of the bed's own kernel or modules there (the guest's kernel is at another,
    KASLR'd, place) means the emulated CPU ran the guest on the bed's state.
    """

    TRACEFS = Path("/sys/kernel/tracing")
    EVENT = TRACEFS / "events/kvm/kvm_exit"
    SVM_EXIT_SHUTDOWN = 0x7F

    def start(self) -> None:
        """Mount tracefs if needed, empty its buffer and turn the filtered tracepoint on."""
        if not (self.TRACEFS / "trace").exists():
            subprocess.run(
                ["mount", "-t", "tracefs", "nodev", str(self.TRACEFS)], timeout=60, check=True
            )
        (self.TRACEFS / "trace").write_text("")
        (self.EVENT / "filter").write_text(f"exit_reason == {self.SVM_EXIT_SHUTDOWN:#x}")
        (self.EVENT / "enable").write_text("1")
        (self.TRACEFS / "tracing_on").write_text("1")

    def stop(self) -> None:
        """Turn the tracepoint off again."""
        (self.EVENT / "enable").write_text("0")
        (self.EVENT / "filter").write_text("0")

    def events(self) -> list[str]:
        """The shutdown exits traced so far (``kvm_exit`` lines)."""
        return [
            line.strip()
            for line in (self.TRACEFS / "trace").read_text(errors="replace").splitlines()
            if "kvm_exit:" in line and "reason shutdown" in line
        ]

    def report(self) -> str:
        """The shutdown exits seen, each with the bed kernel's symbol at its guest RIP."""
        events = self.events()
        if not events:
            return "no triple fault (SVM shutdown exit) in the bed's KVM"
        lines = [f"{len(events)} triple fault(s) (SVM shutdown exit) in the bed's KVM:"]
        for event in events:
            rip = int(event.split(" rip ")[1].split()[0], 16)
            lines += [event, f"  guest RIP {rip:#x}: the bed's kernel there: {_bed_symbol(rip)}"]
        return "\n".join(lines)


def _bed_symbol(address: int) -> str:
    """``symbol+offset [module]`` of the bed's kernel (/proc/kallsyms) at *address*, or
    "nothing" (no symbol within 64 KiB below it)."""
    best, name = 0, "-"
    with open("/proc/kallsyms") as symbols:
        for line in symbols:
            value, _, rest = line.partition(" ")
            start = int(value, 16)
            if best < start <= address:
                best, name = start, rest.split(" ", 1)[1].strip()
    if not best or address - best > 0x10000:
        return "nothing"
    return f"{name}+{address - best:#x}"
