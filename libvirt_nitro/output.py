"""Formatters: typed records (:class:`~libvirt_nitro.pipeline.SyscallRecord`) to text.

Every piece of text the command line and the service print is made here, and ``-s`` (the
string limit) is the formatters' own: the pipeline keeps values as data.

- :class:`StraceFormatter`: strace's lines, printed once a call returned: ``[pid 412 nginx]
  openat(AT_FDCWD, "/etc/nginx.conf", O_RDONLY) = 5``; a call that never returns
  (``exit_group``) prints at entry with ``= ?`` and ``+++ exited with 0 +++``; an entry whose
  exit was never seen prints as ``<unfinished ...>`` when its thread makes its next call (an
  ``execve`` that is followed by a call of the same thread succeeded: ``= 0``); a signal
  handler's return shows the delivery, ``--- SIGUSR1 {...} ---``. Optionally interleaved as
  strace prints overlapping calls (``<... read resumed>``).
- :class:`RawFormatter`: one line per entry and exit: syscall number and name, the six
  argument registers (RDI, RSI, RDX, R10, R8, R9) in hex, the return value, CR3 and RIP.
- :class:`JsonFormatter`: one JSON object per event, with both views.

:class:`Printer` writes an event's lines to a stream and counts the events.
"""

from __future__ import annotations

import json
import time
from typing import IO, Any, Protocol

from .strace import format_line, render, render_args

__all__ = [
    "Formatter",
    "StraceFormatter",
    "RawFormatter",
    "JsonFormatter",
    "Printer",
    "formatter_for",
    "NO_RETURN",
]

#: Calls that do not return to their caller when they succeed.
NO_RETURN = frozenset({"exit", "exit_group"})


class Formatter(Protocol):
    """Turns one record into the lines to print (possibly none)."""

    def lines(self, record: Any) -> list[str]:
        """The lines of *record* (a :class:`~libvirt_nitro.pipeline.SyscallRecord`)."""
        ...


class StraceFormatter:
    """strace's lines, strings cut at *string_limit* bytes (``-s``).

    Each call prints as one line once it returned (``read(3, "x", 1) = 1``); a call that
    never returns (``exit_group``) prints at entry with ``= ?``, followed by ``+++ exited
    with N +++``; an entry whose exit never came prints as ``name(args <unfinished ...>``
    when its thread makes its next call (an ``execve`` whose thread runs on returned ``0``;
    an ``rt_sigreturn``, its frame's ``rax``); a signal handler's ``rt_sigreturn`` is
    preceded by ``--- SIGUSR1 {si_signo=SIGUSR1, ...} ---``.

    With *interleave*, lines come as strace prints them when calls of several tasks
    overlap: an entry that another task's line interrupts prints as ``read(3,
    <unfinished ...>`` and its exit as ``<... read resumed>"x", 1) = 1``; :meth:`flush`
    gives a line still held open at the end.
    """

    def __init__(self, string_limit: int = 32, interleave: bool = False):
        self.string_limit = string_limit
        self.interleave = interleave
        self._held: tuple[Any, str, str, str] | None = None  # key, prefix, name, entry text
        self._resumable: dict[Any, tuple[str, str]] = {}  # key -> (name, entry args text)

    def lines(self, record: Any) -> list[str]:
        """The lines *record* completes, each prefixed with its task."""
        if self.interleave:
            return self._interleaved(record)
        if record.unfinished is None:  # the common cases, as _items makes them
            if record.direction != "enter":
                text = format_line(record.name or "?", self._args(record), record.ret_text)
                return [f"{_prefix(record.task, record.cr3)} {text}"]
            if record.ret_text is None and record.signal is None:
                return []
        return [
            f"{_prefix(task, cr3)} {text}"
            for task, cr3, text, kind in self._items(record)
            if kind != "open"
        ]

    def calls(self, record: Any) -> list[tuple[Any, str]]:
        """The calls *record* lets strace's form print, as (task, ``"name(args) = ret"``):
        an exit prints its call, an entry of a call that never returns prints it with
        ``= ?``, and an earlier entry of the same thread whose exit was missed comes first
        (``name(args <unfinished ...>``, or with the return its thread running on says)."""
        return [(task, text) for task, _, text, kind in self._items(record) if kind in _CALLS]

    def texts(self, record: Any) -> list[tuple[Any, str]]:
        """As :meth:`calls`, with strace's notes among them: ``--- SIGUSR1 {...} ---``
        before a signal handler's ``rt_sigreturn``, ``+++ exited with 0 +++`` after an
        ``exit_group``."""
        return [(task, text) for task, _, text, kind in self._items(record) if kind != "open"]

    def _items(self, record: Any) -> list[tuple[Any, int, str, str]]:
        """(task, cr3, text, kind) of every line of *record*; kind ``line``, ``exit`` (a
        call's exit line), ``note`` (``---``/``+++``) or ``open`` (the arguments of an entry
        whose line ends at its exit: printed only when interleaving)."""
        items = []
        unfinished = record.unfinished
        if unfinished is not None:
            text = format_line(unfinished.name, self._args(unfinished), unfinished.ret_text)
            items.append((unfinished.task, unfinished.cr3, text, "line"))
        task, cr3 = record.task, record.cr3
        if record.direction == "enter":
            if record.signal is not None:
                name, info = record.signal
                note = f"--- {name} {render(info, self.string_limit)} ---"
                items.append((task, cr3, note, "note"))
            if record.ret_text is not None:
                text = format_line(record.name, self._args(record), record.ret_text)
                items.append((task, cr3, text, "line"))
                status = _exit_status(record)
                if status is not None:
                    items.append((task, cr3, f"+++ exited with {status} +++", "note"))
            elif self.interleave and record.values is not None:
                items.append((task, cr3, self._args(record), "open"))
        else:
            text = format_line(record.name or "?", self._args(record), record.ret_text)
            items.append((task, cr3, text, "exit"))
        return items

    def _interleaved(self, record: Any) -> list[str]:
        out: list[str] = []
        for task, cr3, text, kind in self._items(record):
            key = ("tid", task.tid) if task is not None else ("cr3", cr3)
            prefix = _prefix(task, cr3)
            if kind == "open":
                out += self.flush()
                self._held = (key, prefix, record.name, text)
                continue
            held = self._held
            if kind == "exit" and held is not None and held[0] == key and held[2] == record.name:
                self._held = None
                out.append(f"{prefix} {text}")
                continue
            out += self.flush()
            resumed = self._resumable.pop(key, None) if kind == "exit" else None
            if resumed is not None and resumed[0] == record.name:
                head = f"{record.name}({resumed[1]}"
                rest = text[len(head) :] if text.startswith(head) else text
                out.append(f"{prefix} <... {record.name} resumed>{rest}")
            else:
                out.append(f"{prefix} {text}")
        return out

    def flush(self) -> list[str]:
        """The line held open by an entry (interleaving), as ``<unfinished ...>``."""
        if self._held is None:
            return []
        key, prefix, name, args_text = self._held
        self._held = None
        self._resumable[key] = (name, args_text)
        return [f"{prefix} {format_line(name, args_text, None)}"]

    def _args(self, record: Any) -> str:
        if record.values is None:
            return "?"
        return render_args(record.values, self.string_limit)


_CALLS = frozenset({"line", "exit"})


def _exit_status(record: Any) -> int | None:
    """``exit``/``exit_group``'s status, as ``+++ exited with N +++`` shows it."""
    if record.name not in NO_RETURN or not record.args:
        return None
    return record.args[0] & 0xFF


class RawFormatter:
    """One raw line per entry and exit; nothing decoded."""

    def lines(self, record: Any) -> list[str]:
        """``[vcpu 0] enter openat(0xffffff9c, 0x4a2010, ...) nr=257 cr3=… rip=…``, or the
        exit's ``… openat = 3 nr=257 …``."""
        head = f"[vcpu {record.vcpu}] {record.direction:<5}"
        tail = f"cr3={record.cr3:#x} rip={record.rip:#x}"
        if record.direction == "enter":
            args = ", ".join(f"{arg:#x}" for arg in record.args)
            return [f"{head} {record.name}({args}) nr={record.nr} {tail}"]
        name = record.name or "?"
        nr = "?" if record.nr is None else record.nr
        return [f"{head} {name} = {record.ret_text} nr={nr} {tail}"]


class JsonFormatter:
    """JSON lines: ``vcpu``, ``direction``, ``nr``, ``name``, ``args`` (entries: the six
    argument registers), ``ret`` (exits, signed), ``cr3``, ``rip``, ``time`` (wall-clock
    seconds); with *decoded*, also ``pid``, ``tid``, ``comm``, ``args_decoded`` and
    ``ret_decoded`` (exits), strings cut at *string_limit* bytes."""

    def __init__(self, string_limit: int = 32, decoded: bool = True):
        self.string_limit = string_limit
        self.decoded = decoded
        self._wall_offset = time.time() - time.monotonic_ns() / 1e9

    def as_dict(self, record: Any) -> dict[str, Any]:
        """The JSON object of *record*."""
        out: dict[str, Any] = {
            "vcpu": record.vcpu,
            "direction": record.direction,
            "cr3": record.cr3,
            "rip": record.rip,
            "time": round(self._wall_offset + record.timestamp_ns / 1e9, 6),
        }
        if record.direction == "enter":
            out["args"] = list(record.args)
        else:
            out["ret"] = record.ret
        if self.decoded:
            task = record.task
            out.update(
                pid=task.pid if task else None,
                tid=task.tid if task else None,
                comm=task.comm if task else None,
                args_decoded="?"
                if record.values is None
                else render_args(record.values, self.string_limit),
            )
            if record.direction == "exit":
                out["ret_decoded"] = record.ret_text
        out["nr"] = record.nr
        out["name"] = record.name
        return out

    def lines(self, record: Any) -> list[str]:
        """One JSON line."""
        return [json.dumps(self.as_dict(record))]


def formatter_for(
    *, as_json: bool = False, raw: bool = False, decoded: bool = True, string_limit: int = 32
) -> Formatter:
    """The formatter of the command line's options: JSON (*as_json*), raw lines (*raw*, or
    when records are not *decoded*), else strace's lines."""
    if as_json:
        return JsonFormatter(string_limit, decoded=decoded)
    if raw or not decoded:
        return RawFormatter()
    return StraceFormatter(string_limit)


class Printer:
    """Writes each event's record through *formatter* to *stream*; ``printed`` counts the
    events written (an entry that strace's form prints later counts too)."""

    def __init__(self, stream: IO[str], formatter: Formatter):
        self.stream = stream
        self.formatter = formatter
        self.printed = 0

    def write(self, event: Any) -> None:
        """Print *event* (an :class:`~libvirt_nitro.abi.event.Event` with its record)."""
        self.printed += 1
        for line in self.formatter.lines(event.record):
            self.stream.write(line + "\n")


#: id(task) -> (task, its prefix): tasks are few and their objects reused (the kernel
#: backend's are cached), so the text is made once per task.
_PREFIXES: dict[int, tuple[Any, str]] = {}


def _prefix(task: Any, cr3: int) -> str:
    if task is not None:
        hit = _PREFIXES.get(id(task))
        if hit is not None and hit[0] is task:
            return hit[1]
        if len(_PREFIXES) > 4096:
            _PREFIXES.clear()
        text = _task_prefix(task, cr3)
        _PREFIXES[id(task)] = (task, text)
        return text
    return _task_prefix(task, cr3)


def _task_prefix(task: Any, cr3: int) -> str:
    if task is None:
        return f"[cr3 {cr3:#x}]"
    if task.tid != task.pid:
        return f"[pid {task.pid} tid {task.tid} {task.comm}]"
    return f"[pid {task.pid} {task.comm}]"
