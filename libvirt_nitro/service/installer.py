"""``libvirt-nitro install-hook``: write (or remove) the libvirt QEMU hook script.

The script goes to ``HOOKS_DIR/qemu.d/50-libvirt-nitro`` (libvirt ≥ 6.5 runs every executable
in ``qemu.d/`` after ``qemu``, in name order; Debian 12 has 9.0), so an operator's own
``/etc/libvirt/hooks/qemu`` stays untouched and keeps running. A file of that name that
libvirt-nitro did not write is never overwritten.

libvirtd looks for hook scripts when it starts and when it reloads (SIGHUP), not before
each call: a daemon started while ``/etc/libvirt/hooks`` held neither ``qemu`` nor an
executable in ``qemu.d/`` ignores a script installed later until it is reloaded
(``--reload`` sends the SIGHUP; measured on libvirt 9.0).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from ..errors import HookConflict, NitroError

__all__ = [
    "HOOKS_DIR",
    "SCRIPT_NAME",
    "MARKER",
    "hook_path",
    "hook_script",
    "install",
    "uninstall",
    "reload_libvirtd",
]

#: libvirt's hook directory (``SYSCONFDIR/libvirt/hooks``).
HOOKS_DIR = Path("/etc/libvirt/hooks")
#: The script's name in ``qemu.d/``.
SCRIPT_NAME = "50-libvirt-nitro"
#: The line that marks a script as ours.
MARKER = "# libvirt-nitro hook, written by `libvirt-nitro install-hook`; do not edit."
#: libvirtd's pidfile (``libvirtd -d`` as root).
LIBVIRTD_PIDFILE = Path("/run/libvirtd.pid")


def hook_path(hooks_dir: Path = HOOKS_DIR) -> Path:
    """Where :func:`install` writes the script."""
    return hooks_dir / "qemu.d" / SCRIPT_NAME


def hook_script(python: str | None = None) -> str:
    """The script: exec this interpreter's ``libvirt_nitro.service hook`` with libvirt's
    arguments (stdin, the domain XML, is inherited)."""
    python = python or sys.executable
    package_root = Path(__file__).resolve().parents[2]
    return (
        "#!/bin/sh\n"
        f"{MARKER}\n"
        f"PYTHONPATH='{package_root}' exec '{python}' -m libvirt_nitro.service hook \"$@\"\n"
    )


def _is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")
    except FileNotFoundError:
        return True


def install(hooks_dir: Path = HOOKS_DIR, python: str | None = None) -> Path:
    """Write the hook script (atomically, 0755); return its path.

    :raises HookConflict: a file of that name exists and is not ours.
    """
    path = hook_path(hooks_dir)
    if not _is_ours(path):
        raise HookConflict(
            f"{path} exists and was not written by libvirt-nitro: remove or rename it first"
        )
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = path.with_name(f".{SCRIPT_NAME}.tmp")
    tmp.write_text(hook_script(python))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path


def uninstall(hooks_dir: Path = HOOKS_DIR) -> bool:
    """Remove the hook script, and ``qemu.d`` if that leaves it empty; return whether there
    was a script.

    :raises HookConflict: the file there is not ours.
    """
    path = hook_path(hooks_dir)
    if not path.exists():
        return False
    if not _is_ours(path):
        raise HookConflict(f"{path} was not written by libvirt-nitro: not removing it")
    path.unlink()
    with contextlib.suppress(OSError):  # not empty: other scripts live there
        path.parent.rmdir()
    return True


def reload_libvirtd(pidfile: Path = LIBVIRTD_PIDFILE) -> int:
    """SIGHUP libvirtd (a reload: it looks for hook scripts again); return its pid.

    :raises NitroError: no running libvirtd found through *pidfile*.
    """
    try:
        pid = int(pidfile.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        raise NitroError(f"no running libvirtd found through {pidfile}") from None
    if comm != "libvirtd":
        raise NitroError(f"{pidfile} names pid {pid}, which is {comm!r}, not libvirtd")
    os.kill(pid, signal.SIGHUP)
    return pid
