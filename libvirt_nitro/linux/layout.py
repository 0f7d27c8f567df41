"""Where a Linux x86-64 guest keeps ``current`` and what a ``struct task_struct`` looks
like, learned from the guest's own kernel image — no System.map, no debug package.

At a SYSCALL/SYSRET trap the guest is in user-GS state, so MSR_KERNEL_GS_BASE holds the
trapping CPU's per-CPU base and::

    struct task_struct *current = *(u64 *)(kernel_gs_base + layout.current_task);
    pid_t pid  = *(s32 *)(current + layout.task_pid);     /* thread id */
    pid_t tgid = *(s32 *)(current + layout.task_tgid);    /* process id */
    char comm[layout.task_comm_len] at current + layout.task_comm;

The offsets come from the kernel's BTF (``CONFIG_DEBUG_INFO_BTF``): struct layouts, and
the ``.data..percpu`` DATASEC that pahole emits with the per-CPU variables' offsets.
Extracting them takes seconds (decompressing the bzImage), so :meth:`KernelLayout.from_image`
caches them per image SHA-256 in :data:`CACHE_DIR`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnsupportedKernel
from . import kimage
from .btf import Btf

__all__ = ["CACHE_DIR", "KernelLayout"]

#: Where :meth:`KernelLayout.from_image` keeps ``<sha256 of the image>.json``.
CACHE_DIR = Path("/var/cache/libvirt-nitro/kernels")
#: Bumped whenever the cached fields or their meaning change; other files are recomputed.
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class KernelLayout:
    """The handful of guest-kernel offsets the tracer needs, all in bytes.

    :ivar release: ``uname -r`` of the kernel (``"6.1.0-56-amd64"``), or None if unknown
    :ivar banner: its ``linux_banner`` line ("Linux version …", no newline), or None
    :ivar current_task: offset of ``current_task`` (``struct task_struct *``) in the
        per-CPU area, i.e. from the CPU's GS base (6.2–6.14: ``pcpu_hot.current_task``)
    :ivar task_pid: offset of ``pid`` (``pid_t``, s32: the thread id) in ``task_struct``
    :ivar task_tgid: offset of ``tgid`` (``pid_t``, s32: the process id)
    :ivar task_comm: offset of ``comm`` (``char[task_comm_len]``, NUL-padded)
    :ivar task_comm_len: length of ``comm`` (``TASK_COMM_LEN``, 16)
    :ivar task_real_parent: offset of ``real_parent`` (``struct task_struct *``)
    :ivar task_mm: offset of ``mm`` (``struct mm_struct *``, NULL for kernel threads)
    :ivar mm_pgd: offset of ``pgd`` (``pgd_t *``, guest-virtual) in ``mm_struct``, or None
    :ivar image_sha256: SHA-256 of the bzImage it came from (hex), or None
    """

    release: str | None
    banner: str | None
    current_task: int
    task_pid: int
    task_tgid: int
    task_comm: int
    task_comm_len: int
    task_real_parent: int
    task_mm: int
    mm_pgd: int | None
    image_sha256: str | None = None

    def current_task_address(self, kernel_gs_base: int) -> int:
        """Guest-virtual address of the CPU's ``current_task`` pointer (a ``u64`` to read),
        given MSR_KERNEL_GS_BASE at a trap from user mode (GS_BASE when in the kernel)."""
        return (kernel_gs_base + self.current_task) & 0xFFFF_FFFF_FFFF_FFFF

    @classmethod
    def from_btf(cls, btf: Btf, banner: tuple[str, str] | None = None) -> KernelLayout:
        """The layout described by a kernel's BTF (*banner* as from
        :func:`~libvirt_nitro.linux.kimage.linux_banner`). Uncached.

        :raises UnsupportedKernel: no ``current_task`` per-CPU variable, or ``task_struct``
            lacks one of the members, or they have unexpected types
        """
        try:
            current_task = btf.percpu_offset("current_task")
        except UnsupportedKernel:
            # Linux 6.2 ("x86: Put hot per CPU variables into a struct") moved it into
            # struct pcpu_hot; 6.15 ("x86/percpu: Move current_task to percpu hot
            # section") made it a plain per-CPU variable again.
            try:
                current_task = btf.percpu_offset("pcpu_hot") + btf.member_offset(
                    "pcpu_hot", "current_task"
                )
            except UnsupportedKernel:
                raise UnsupportedKernel(
                    "its BTF has no per-CPU variable current_task or pcpu_hot "
                    "(pahole without per-CPU variables?)"
                ) from None
        for field in ("pid", "tgid"):
            size = btf.sizeof(btf.member_type("task_struct", field))
            if size != 4:
                raise UnsupportedKernel(f"task_struct.{field} is {size} bytes, not 4")
        comm = btf.member_type("task_struct", "comm")
        try:
            mm_pgd: int | None = btf.member_offset("mm_struct", "pgd")
        except UnsupportedKernel:
            mm_pgd = None
        return cls(
            release=banner[0] if banner else None,
            banner=banner[1] if banner else None,
            current_task=current_task,
            task_pid=btf.member_offset("task_struct", "pid"),
            task_tgid=btf.member_offset("task_struct", "tgid"),
            task_comm=btf.member_offset("task_struct", "comm"),
            task_comm_len=btf.array_length(comm),
            task_real_parent=btf.member_offset("task_struct", "real_parent"),
            task_mm=btf.member_offset("task_struct", "mm"),
            mm_pgd=mm_pgd,
        )

    @classmethod
    def from_vmlinux(cls, vmlinux: bytes) -> KernelLayout:
        """The layout of a decompressed kernel (ELF vmlinux or raw image). Uncached.

        :raises UnsupportedKernel: no BTF, or see :meth:`from_btf`
        """
        banner = kimage.linux_banner(vmlinux)
        return cls.from_btf(kimage.find_btf(vmlinux), banner)

    @classmethod
    def from_image(
        cls, path: str | os.PathLike, cache_dir: Path | None = CACHE_DIR
    ) -> KernelLayout:
        """The layout of bzImage *path* (the domain's ``<kernel>``, or the guest's
        ``/boot/vmlinuz-*`` copied out), from ``<cache_dir>/<sha256>.json`` when there,
        else extracted (seconds) and cached. ``cache_dir=None`` disables the cache; a
        cache directory that cannot be written only costs the next call the time.

        :raises OSError: *path* cannot be read
        :raises UnsupportedKernel: see :meth:`from_vmlinux` and
            :func:`~libvirt_nitro.linux.kimage.extract_vmlinux`
        :raises MalformedKernelImage: the image is corrupt or truncated
        """
        image = Path(path).read_bytes()
        sha256 = hashlib.sha256(image).hexdigest()
        cache = Path(cache_dir) / f"{sha256}.json" if cache_dir is not None else None
        if cache is not None:
            cached = cls._load(cache, sha256)
            if cached is not None:
                return cached
        layout = dataclasses.replace(
            cls.from_vmlinux(kimage.extract_vmlinux(image)), image_sha256=sha256
        )
        if cache is not None:
            layout._store(cache)
        return layout

    @classmethod
    def _load(cls, cache: Path, sha256: str) -> KernelLayout | None:
        try:
            record = json.loads(cache.read_text())
            if record.pop("format") != _CACHE_FORMAT or record["image_sha256"] != sha256:
                return None
            layout = cls(**record)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or from another version: recomputed and rewritten
        offsets = [getattr(layout, f.name) for f in dataclasses.fields(cls) if f.type == "int"]
        return layout if all(type(value) is int for value in offsets) else None

    def _store(self, cache: Path) -> None:
        record = {"format": _CACHE_FORMAT, **dataclasses.asdict(self)}
        temporary = None
        try:
            cache.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=cache.parent, prefix=".tmp-", suffix=".json", delete=False
            ) as out:
                temporary = out.name
                json.dump(record, out, indent=1, sort_keys=True)
            os.chmod(temporary, 0o644)
            os.replace(temporary, cache)
        except OSError:
            # A read-only or foreign cache directory: the layout is still right.
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
