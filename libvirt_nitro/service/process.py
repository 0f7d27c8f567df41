"""Waiting on other processes (by pidfd), for the service's processes."""

from __future__ import annotations

import os
import select

__all__ = ["wait_for_exit"]


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait up to *timeout* s for process *pid* to exit; True if it has (or never existed)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)
