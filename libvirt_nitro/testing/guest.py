"""The test guest: build it, run it as a libvirt domain, and drive its workload.

The guest (see ``tests/guest/build-guest``) is a Debian kernel booted directly with a busybox
initramfs whose init serves ``workload`` commands on its second serial port. That port is a
unix socket on the host, in a root-only directory; :class:`ControlPort` speaks the line
protocol described in ``tests/guest/workload.c``.  Building needs the source checkout this
package was installed from (editable, as scripts/setup-host does): :data:`GUEST_SOURCES`.

Test and benchmark support (:mod:`libvirt_nitro.testing`); also a small command line, used by
``scripts/demo``::

    python -m libvirt_nitro.testing.guest start NAME [--accel kvm|qemu] [--vcpus N]
    python -m libvirt_nitro.testing.guest run NAME COMMAND...
    python -m libvirt_nitro.testing.guest stop NAME
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree
from lxml.builder import E

#: The guest's sources (build-guest, init, workload.c): tests/guest of the checkout.
GUEST_SOURCES = Path(__file__).resolve().parents[2] / "tests" / "guest"
BUILD_SCRIPT = GUEST_SOURCES / "build-guest"
#: Control sockets and console logs of running test guests; root-only.
RUN_DIR = Path(os.environ.get("LIBVIRT_NITRO_RUN_DIR", "/run/libvirt-nitro/guests"))
#: Booting under TCG takes 7-12 s here; the deadline leaves room for a loaded 2-core machine.
BOOT_TIMEOUT = 120.0
#: Seconds a booting guest may stay silent before pings are sent anyway (its ``=== ready``
#: may have been missed).
READY_GRACE = 60.0

__all__ = [
    "GuestImage",
    "ControlPort",
    "CommandResult",
    "TestGuest",
    "domain_xml",
    "control_socket_path",
    "console_log_path",
    "prepare_run_dir",
    "RUN_DIR",
    "GUEST_SOURCES",
]


@dataclass(frozen=True)
class GuestImage:
    """The built guest: kernel, initramfs, System.map and what they were built from."""

    directory: Path
    env: dict[str, str]

    @property
    def kernel(self) -> Path:
        """The bzImage (``vmlinuz``) to boot directly."""
        return Path(self.env["KERNEL"])

    @property
    def initrd(self) -> Path:
        """The gzip'd cpio initramfs with busybox and the workload."""
        return Path(self.env["INITRD"])

    @property
    def cmdline(self) -> str:
        """The kernel command line the guest is meant to boot with."""
        return self.env["CMDLINE"]

    @classmethod
    def build(cls) -> GuestImage:
        """Build the guest, or reuse the cached build (see ``build-guest``).

        :raises FileNotFoundError: no :data:`BUILD_SCRIPT` (not a source checkout).
        """
        if not BUILD_SCRIPT.is_file():
            raise FileNotFoundError(
                f"no {BUILD_SCRIPT}: building the test guest needs the libvirt-nitro source "
                "checkout (pip install -e .)"
            )
        done = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
        )
        return cls.load(Path(done.stdout.strip().splitlines()[-1]))

    @classmethod
    def load(cls, directory: Path) -> GuestImage:
        """Read a built guest's ``guest.env``."""
        env = {}
        for line in (directory / "guest.env").read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
        return cls(directory, env)


def domain_xml(
    name: str,
    image: GuestImage,
    accel: str = "qemu",
    vcpus: int = 2,
    memory_mib: int = 256,
    metadata: str | None = None,
    cpuset: str | None = None,
) -> str:
    """The libvirt XML of a test guest domain named *name*.

    *accel* is the ``<domain type>``: ``qemu`` (TCG, boots here) or ``kvm`` (starts, with
    QEMU's KVM fds, but on this PVM host the guest hangs in early boot: DESIGN.md §4; it
    boots in the kernel test bed). A KVM guest boots with ``pci=noearly``: nested under the
    bed's emulated SVM, the early PCI scans of the GART aperture check cost ~5 s.
    ttyS0 is the kernel console, logged to a file; ttyS1 is the workload's control port.
    *metadata*: an element (XML text, e.g. a ``<nitro:trace>``) for the domain's
    ``<metadata>``. *cpuset* (libvirt's syntax, e.g. ``"1"``) pins its vCPUs and QEMU.
    """
    console, control = console_log_path(name), control_socket_path(name)
    cmdline = image.cmdline + (" pci=noearly" if accel == "kvm" else "")
    domain = E.domain(
        E.name(name),
        E.memory(str(memory_mib), unit="MiB"),
        E.vcpu(str(vcpus), **({"cpuset": cpuset} if cpuset else {})),
        E.os(
            E.type("hvm", arch="x86_64", machine="pc"),
            E.kernel(str(image.kernel)),
            E.initrd(str(image.initrd)),
            E.cmdline(cmdline),
        ),
        E.on_poweroff("destroy"),
        E.on_reboot("destroy"),
        E.on_crash("destroy"),
        E.devices(
            E.serial(E.source(path=str(console)), E.target(port="0"), type="file"),
            E.serial(E.source(mode="bind", path=str(control)), E.target(port="1"), type="unix"),
            E.memballoon(model="none"),
        ),
        # Do not let libvirt chown the cached kernel/initrd: they are world-readable instead.
        E.seclabel(type="none", model="dac"),
        type=accel,
    )
    if metadata is not None:
        domain.insert(1, E.metadata(etree.fromstring(metadata.encode())))
    return etree.tostring(domain, pretty_print=True, encoding="unicode")


def control_socket_path(name: str) -> Path:
    """Where the control port of guest *name* listens."""
    return RUN_DIR / f"{name}.sock"


def console_log_path(name: str) -> Path:
    """Where the kernel console of guest *name* is written."""
    return RUN_DIR / f"{name}.console"


def prepare_run_dir() -> None:
    """Create :data:`RUN_DIR` private to root (0700): the sockets give control of a guest."""
    RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(RUN_DIR, 0o700)


@dataclass(frozen=True)
class CommandResult:
    """What a workload command printed (``key=value`` lines) and how it ended."""

    output: list[str]
    exit_code: int | None
    signal: int | None

    @property
    def values(self) -> dict[str, str]:
        """The ``key=value`` lines of the output as a dict."""
        return dict(line.split("=", 1) for line in self.output if "=" in line)


class ControlPort:
    """Client of the workload server on the guest's control port (a unix socket)."""

    def __init__(self, path: Path):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(path))
        self._buffer = b""
        self._tags = itertools.count(1)

    def close(self) -> None:
        """Close the connection (the guest keeps running)."""
        self._sock.close()

    def wait_ready(self, timeout: float = BOOT_TIMEOUT, booting: bool = False) -> float:
        """Ping until the workload server answers; return the seconds it took.

        Pings are re-sent every second because the guest drops what arrives before its
        server has opened the port. With *booting* (connected before the guest booted),
        the first ping waits for the server's ``=== ready`` (or :data:`READY_GRACE` s of
        silence): input queued at a serial port nobody had opened yet was seen to stall
        the port of a KVM guest nested in the kernel test bed (QEMU 7.2: no input taken
        afterwards), in most boots that followed another nested VM.
        """
        start = time.monotonic()
        deadline = start + timeout
        sent: set[str] = set()
        ready = not booting
        while time.monotonic() < deadline:
            if ready or time.monotonic() >= start + READY_GRACE:
                tag = f"p{next(self._tags)}"
                sent.add(tag)
                self._send(f"{tag} ping")
            line = self._read_line(min(1.0, deadline - time.monotonic()))
            while line is not None:
                words = line.split()
                if words == ["===", "ready"]:
                    ready = True
                if len(words) == 3 and words[0] == "===" and words[1] in sent:
                    return time.monotonic() - start
                line = self._read_line(0.05)
        raise TimeoutError(f"test guest did not answer on its control port within {timeout} s")

    def run(self, *command: str, timeout: float = 60.0) -> CommandResult:
        """Run a workload verb (e.g. ``run("getpid", "5")``) and wait for it to end."""
        tag = f"c{next(self._tags)}"
        self._send(" ".join([tag, *command]))
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            line = self._read_line(remaining) if remaining > 0 else None
            if line is None:
                raise TimeoutError(f"guest command {command!r} did not end within {timeout} s")
            words = line.split()
            if words[:2] == ["===", tag] and len(words) == 3:
                key, _, value = words[2].partition("=")
                code = int(value)
                return CommandResult(
                    output, code if key == "exit" else None, code if key == "signal" else None
                )
            if not line.startswith("==="):
                output.append(line)

    def _send(self, line: str) -> None:
        self._sock.sendall(line.encode() + b"\n")

    def _read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                return None
            if not data:
                raise ConnectionError("test guest control port closed")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace").rstrip("\r")


class TestGuest:
    """A running test guest domain (transient: it disappears when destroyed)."""

    __test__ = False  # not a pytest test class

    def __init__(self, dom: Any, port: ControlPort | None):
        self.dom = dom
        self.port = port

    @property
    def name(self) -> str:
        """The libvirt domain name."""
        return self.dom.name()

    @classmethod
    def start(
        cls,
        conn: Any,
        name: str,
        image: GuestImage,
        accel: str = "qemu",
        vcpus: int = 2,
        wait: bool | None = None,
        boot_timeout: float = BOOT_TIMEOUT,
        memory_mib: int = 256,
        metadata: str | None = None,
        cpuset: str | None = None,
    ) -> TestGuest:
        """Create the transient domain *name* and, with *wait*, wait (at most *boot_timeout*
        s) for its workload (:meth:`connect`); the domain is destroyed if that fails.

        *wait* defaults to True for a TCG guest and False for a KVM one, which does not
        boot on this host (DESIGN.md §4): it is returned without a control connection (in
        the kernel test bed, where it boots, pass ``wait=True``). *memory_mib* is the
        guest's RAM (an initramfs with more programs needs more); *metadata* and *cpuset*:
        see :func:`domain_xml`.
        """
        prepare_run_dir()
        control_socket_path(name).unlink(missing_ok=True)
        xml = domain_xml(
            name,
            image,
            accel=accel,
            vcpus=vcpus,
            memory_mib=memory_mib,
            metadata=metadata,
            cpuset=cpuset,
        )
        dom = conn.createXML(xml, 0)
        guest = cls(dom, None)
        if accel == "qemu" if wait is None else wait:
            try:
                guest.connect(boot_timeout)
            except BaseException:
                guest.destroy()
                raise
        return guest

    def connect(self, timeout: float = BOOT_TIMEOUT) -> float:
        """Open the control port of a guest just created and wait until its workload
        answers (the guest booted); return the seconds that took.

        :raises TimeoutError: no answer within *timeout* s.
        """
        if self.port is None:
            self.port = ControlPort(control_socket_path(self.name))
        return self.port.wait_ready(timeout, booting=True)

    def run(self, *command: str, timeout: float = 60.0) -> CommandResult:
        """Run a workload command in the guest (see :meth:`ControlPort.run`)."""
        if self.port is None:
            raise RuntimeError(f"guest {self.name} has no control connection")
        return self.port.run(*command, timeout=timeout)

    def destroy(self) -> None:
        """Destroy the domain (ignoring one that is already gone) and remove its files.

        If the connection died (libvirtd was restarted), a new one does it."""
        import libvirt

        name, uuid = self.dom.name(), self.dom.UUIDString()  # cached: no call to libvirtd
        if self.port is not None:
            self.port.close()
        try:
            self.dom.destroy()
        except libvirt.libvirtError as exc:
            gone = (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID)
            if exc.get_error_code() not in gone:  # e.g. a dead connection: try a new one
                conn = libvirt.open("qemu:///system")
                try:
                    conn.lookupByUUIDString(uuid).destroy()
                except libvirt.libvirtError as again:
                    if again.get_error_code() not in gone:
                        raise
                finally:
                    conn.close()
        control_socket_path(name).unlink(missing_ok=True)
        console_log_path(name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m libvirt_nitro.testing.guest start|run|stop NAME``."""
    parser = argparse.ArgumentParser(prog="testguest", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--connect", default="qemu:///system", metavar="URI")
    verbs = parser.add_subparsers(dest="verb", required=True)
    start = verbs.add_parser("start", help="build if needed and boot a test guest")
    start.add_argument("name")
    start.add_argument("--accel", choices=["qemu", "kvm"], default="qemu")
    start.add_argument("--vcpus", type=int, default=2)
    run = verbs.add_parser("run", help="run a workload command in a running test guest")
    run.add_argument("name")
    run.add_argument("command", nargs=argparse.REMAINDER)
    stop = verbs.add_parser("stop", help="destroy a test guest")
    stop.add_argument("name")
    args = parser.parse_args(argv)

    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(args.connect)
    if args.verb == "start":
        try:
            dom = conn.lookupByName(args.name)
        except libvirt.libvirtError:
            dom = None
        if dom is not None and dom.isActive():
            print(f"test guest {args.name} is already running", file=sys.stderr)
            return 0
        TestGuest.start(conn, args.name, GuestImage.build(), accel=args.accel, vcpus=args.vcpus)
        print(f"test guest {args.name} is up", file=sys.stderr)
    elif args.verb == "run":
        port = ControlPort(control_socket_path(args.name))
        port.wait_ready(timeout=10)
        result = port.run(*args.command)
        print("\n".join(result.output))
        port.close()
        return result.exit_code if result.exit_code is not None else 128 + (result.signal or 0)
    else:
        TestGuest(conn.lookupByName(args.name), None).destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
