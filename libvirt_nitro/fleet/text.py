"""strace's lines from published records (the JSON a sink publishes), for ``events``.

A decoded exit prints its call, ``DOMAIN [pid 95 workload] openat(AT_FDCWD, "/x",
O_RDONLY) = 3``; the entry of a call that never returns (``exit_group``) prints with
``= ?``; other entries print nothing (their line comes with their exit). A record without
decoded arguments (raw tracing) prints the raw form, ``DOMAIN [vcpu 0] exit openat = 3``.
"""

from __future__ import annotations

from typing import Any

from ..output import NO_RETURN
from ..strace import format_line

__all__ = ["record_line"]


def record_line(record: dict[str, Any]) -> str | None:
    """The line of *record*, prefixed with its domain's name; None when it prints none."""
    domain = record.get("domain", "?")
    name = record.get("name") or "?"
    direction = record.get("direction")
    if "args_decoded" not in record:
        if direction == "enter":
            args = ", ".join(f"{arg:#x}" for arg in record.get("args") or ())
            return f"{domain} [vcpu {record.get('vcpu')}] enter {name}({args})"
        return f"{domain} [vcpu {record.get('vcpu')}] exit  {name} = {record.get('ret')}"
    if direction == "enter":
        if name not in NO_RETURN:
            return None
        text = format_line(name, record["args_decoded"], "?")
    else:
        text = format_line(name, record["args_decoded"], record.get("ret_decoded"))
    return f"{domain} {_prefix(record)} {text}"


def _prefix(record: dict[str, Any]) -> str:
    pid, tid, comm = record.get("pid"), record.get("tid"), record.get("comm")
    if pid is None:
        return f"[cr3 {record.get('cr3', 0):#x}]"
    if tid is not None and tid != pid:
        return f"[pid {pid} tid {tid} {comm}]"
    return f"[pid {pid} {comm}]"
