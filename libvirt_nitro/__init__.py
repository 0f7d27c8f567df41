"""libvirt-nitro: trace the system calls of running libvirt/QEMU guests from the outside.

The package stays importable without libvirt running: modules that need the ``libvirt``
binding import it when they are called, not at import time.
"""

from __future__ import annotations

from .errors import NitroError

__version__ = "0.1.0"

__all__ = ["NitroError", "__version__"]
