"""libvirt-nitro's runtime directory and the per-domain trace lock, shared by every backend.

Everything under :data:`RUN_DIR` gives or guards control of a guest, so each directory is
created private to root. The trace lock (a flock on ``RUN_DIR/trace/UUID.lock``) makes a
second tracer of the same domain fail at once, whichever backend either uses; the gdbstub
backend's guard inherits the lock fd, so it stays held until the guest has been given back.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import AlreadyTraced

__all__ = ["RUN_DIR", "private_dir", "acquire_trace_lock"]

#: Root of libvirt-nitro's runtime files.
RUN_DIR = Path(os.environ.get("LIBVIRT_NITRO_RUN", "/run/libvirt-nitro"))


def private_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> Path:
    """Create *path* (and its parents) owned by *uid*:*gid* with *mode*, also when it exists."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def acquire_trace_lock(uuid: str, name: str) -> int:
    """Take the trace lock of the domain *uuid* (*name* is for the message); return its fd
    (inheritable, for the gdbstub backend's guard).

    :raises AlreadyTraced: another tracer or its guard holds it.
    """
    locks = private_dir(RUN_DIR / "trace", 0o700)
    fd = os.open(locks / f"{uuid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyTraced(f"domain {name!r} is already being traced by libvirt-nitro") from None
    return fd
