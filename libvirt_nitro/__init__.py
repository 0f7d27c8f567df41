"""libvirt-nitro: trace the system calls of running libvirt/QEMU guests from the outside.

The package stays importable without libvirt running: modules that need the ``libvirt``
binding import it when they are called, not at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import NitroError
from .event_ids import EVENT_ID_LOST, EVENT_ID_SYSCALL

__version__ = "0.1.0"

__all__ = [
    "NitroError",
    "__version__",
    "EVENT_ID_SYSCALL",
    "EVENT_ID_LOST",
    "Event",
    "Ring",
    "Tracer",
    "attach",
]


# Tracer, Event and Ring need the compiled cffi extension: imported on first use so
# that `import libvirt_nitro` works (and the CLI can say what is missing) without it.
_LAZY = {"Tracer": "tracer", "Event": "abi.event", "Ring": "abi.ring", "attach": "attachment"}

if TYPE_CHECKING:
    from .abi.event import Event
    from .abi.ring import Ring
    from .attachment import attach
    from .tracer import Tracer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
