"""The event pipeline shared by every backend: raw event → typed record → formatters.

- :mod:`.filters`: :class:`Filter`, the one filter model (``-e``, ``-p``, ``--comm``, the
  ``<nitro:trace>`` element, the kernel's syscall bitmap);
- :mod:`.pairing`: entries and exits paired once, by thread (by frame only where the task
  is unknown), pending entries dropped when their thread or process exits;
- :mod:`.record`: :class:`SyscallRecord`, the typed record;
- :mod:`.pipeline`: :class:`Pipeline`, which makes records of raw events.

Formatters (strace text, JSON lines, raw lines) are in :mod:`libvirt_nitro.output`.
"""

from __future__ import annotations

from .filters import FIELDS, Filter
from .pairing import Pairer, pair_keys
from .pipeline import Pipeline
from .record import SyscallRecord

__all__ = ["FIELDS", "Filter", "Pairer", "Pipeline", "SyscallRecord", "pair_keys"]
