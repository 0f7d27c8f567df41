"""From a libvirt domain to the QEMU process that runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import DomainNotRunning, NitroError, NoKvmFds, PermissionDenied
from .connection import require_local_qemu
from .kvmfds import KvmFds, duplicate_kvm_fds
from .monitor import qmp
from .xmldesc import DomainXml

__all__ = ["QemuProcess", "VcpuThread", "resolve"]


@dataclass(frozen=True)
class VcpuThread:
    """One vCPU: its index in QEMU (``cpu-index``) and the host thread that runs it."""

    index: int
    thread_id: int


@dataclass
class QemuProcess:
    """A running QEMU process behind a libvirt domain.

    ``accel`` is ``"kvm"`` or ``"tcg"``, as QEMU itself reports (QMP ``query-kvm``).
    ``kvm_fds`` is set when the fds were asked for; the object then owns them: close it.
    """

    name: str
    uuid: str
    domain_id: int
    pid: int
    accel: str
    vcpus: list[VcpuThread]
    xml: DomainXml
    kvm_fds: KvmFds | None = field(default=None)

    def close(self) -> None:
        """Close the duplicated KVM fds, if any."""
        if self.kvm_fds is not None:
            self.kvm_fds.close()

    def __enter__(self) -> QemuProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (what ``inspect --json`` prints)."""
        view: dict[str, Any] = {
            "name": self.name,
            "uuid": self.uuid,
            "id": self.domain_id,
            "pid": self.pid,
            "accel": self.accel,
            "emulator": self.xml.emulator,
            "vcpus": [{"index": v.index, "thread_id": v.thread_id} for v in self.vcpus],
        }
        if self.kvm_fds is not None:
            view["kvm_fds"] = {
                "vm": {"qemu_fd": self.kvm_fds.remote["anon_inode:kvm-vm"], "fd": self.kvm_fds.vm},
                "vcpus": [
                    {
                        "index": index,
                        "qemu_fd": self.kvm_fds.remote[f"anon_inode:kvm-vcpu:{index}"],
                        "fd": fd,
                    }
                    for index, fd in sorted(self.kvm_fds.vcpus.items())
                ],
            }
        return view


def resolve(dom: Any, kvm_fds: bool | None = None) -> QemuProcess:
    """Resolve a running libvirt QEMU domain (``virDomain``) to its :class:`QemuProcess`.

    *kvm_fds*: True requires QEMU's KVM fds (duplicated into this process), False skips them,
    None (the default) takes them when the domain runs under KVM.

    :raises NotQemuDomain: another libvirt driver, or a remote host.
    :raises DomainNotRunning: the domain is defined but not running.
    :raises NoKvmFds: ``kvm_fds=True`` and QEMU has none (TCG).
    :raises PermissionDenied: not root / no ptrace access to QEMU.
    """
    conn = dom.connect()
    require_local_qemu(conn, dom.name())
    if not dom.isActive():
        raise DomainNotRunning(f"domain {dom.name()!r} is not running")
    xml = DomainXml.parse(dom.XMLDesc(0))
    vcpus = sorted(
        (VcpuThread(cpu["cpu-index"], cpu["thread-id"]) for cpu in qmp(dom, "query-cpus-fast")),
        key=lambda v: v.index,
    )
    accel = "kvm" if qmp(dom, "query-kvm").get("enabled") else "tcg"
    pid = _qemu_pid(xml.name, vcpus)
    process = QemuProcess(
        name=xml.name,
        uuid=xml.uuid,
        domain_id=dom.ID(),
        pid=pid,
        accel=accel,
        vcpus=vcpus,
        xml=xml,
    )
    if kvm_fds or (kvm_fds is None and accel == "kvm"):
        if accel != "kvm":
            raise NoKvmFds(f"domain {xml.name!r} runs under TCG: QEMU has no KVM fds")
        process.kvm_fds = duplicate_kvm_fds(pid, expected_vcpus=len(vcpus))
    return process


def _qemu_pid(name: str, vcpus: list[VcpuThread]) -> int:
    """QEMU's pid: the thread group of its vCPU threads, checked against QEMU's command line."""
    if not vcpus:
        raise NitroError(f"QEMU of domain {name!r} reports no vCPUs")
    tid = vcpus[0].thread_id
    try:
        with open(f"/proc/{tid}/status") as status:
            pid = next(int(line.split()[1]) for line in status if line.startswith("Tgid:"))
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
    except FileNotFoundError:
        raise NitroError(
            f"vCPU thread {tid} of domain {name!r} is not on this host (remote libvirt?)"
        ) from None
    except PermissionError:
        raise PermissionDenied(f"cannot read QEMU process of {name!r}: need root") from None
    if not any(arg.startswith(b"guest=" + name.encode() + b",") for arg in argv):
        raise NitroError(f"thread {tid} belongs to pid {pid}, which is not QEMU of {name!r}")
    return pid
