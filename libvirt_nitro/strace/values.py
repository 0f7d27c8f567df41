"""Decoded argument values: what the decoders produce, as data, and how they print.

A decoder turns a raw register (and the guest memory it points to) into a :data:`Value`:

- ``str``: text that does not depend on any output option (``O_RDONLY|O_CLOEXEC``, ``3``,
  ``{st_mode=S_IFREG|0644, ...}``);
- :class:`Quoted`: bytes read from the guest, printed as a quoted C string; a formatter cuts
  it at its own ``-s`` (paths excepted, as strace does);
- :class:`Unreadable`: a pointer whose memory could not be read (printed as the address);
- :class:`Items`: an array of values (``execve``'s argv, ``writev``'s iovecs), cut at ``-s``
  elements;
- :class:`Seq`: values printed one after the other (``{iov_base=``, a string, ``, iov_len=5}``).

The decoder reads at most its *capture budget* of bytes per string or buffer (and elements
per array), so a formatter can print up to that much: see
:attr:`~libvirt_nitro.strace.decode.DecodeOptions.capture_bytes`. :func:`render` is the one
place where a value becomes text.
"""

from __future__ import annotations

from dataclasses import dataclass

from .quote import quote, quote_hex

__all__ = ["Value", "Quoted", "Unreadable", "Items", "Seq", "render", "is_unreadable"]


@dataclass(frozen=True)
class Quoted:
    """Bytes read from guest memory.

    :ivar data: the bytes read (a C string without its NUL)
    :ivar size: a buffer's whole length in bytes (``data`` may be a prefix of it); None for
        a NUL-terminated string
    :ivar cut: a C string whose NUL did not come within the bytes read
    :ivar whole: print all of ``data`` whatever ``-s`` says (paths)
    :ivar hexed: print every byte as ``\\xNN`` (getrandom's buffer)
    :ivar max_len: a C string in a buffer of this many bytes (strace's ``printstr_ex`` of a
        ``QUOTE_0_TERMINATED`` buffer): printed up to its NUL, at most ``max_len`` bytes
        then ``...``
    """

    data: bytes
    size: int | None = None
    cut: bool = False
    whole: bool = False
    hexed: bool = False
    max_len: int | None = None


@dataclass(frozen=True)
class Unreadable:
    """A pointer whose target could not be read: prints as the address (``NULL`` for 0)."""

    address: int


@dataclass(frozen=True)
class Items:
    """An array: ``[a, b]``; ``more`` when elements follow those read; ``fault`` the address
    of the first element that could not be read (``[a, ... /* 0x7ffd1000 */]``).

    ``limit`` False: every element prints whatever ``-s`` says (an array strace prints in
    full)."""

    items: tuple[Value, ...]
    more: bool = False
    fault: int | None = None
    limit: bool = True


@dataclass(frozen=True)
class Seq:
    """Values printed one after the other, e.g. a label and its value: ``child_stack=NULL``."""

    parts: tuple[Value, ...]


Value = str | Quoted | Unreadable | Items | Seq


def is_unreadable(value: Value | None) -> bool:
    """True when *value* is an :class:`Unreadable` pointer (worth reading again later)."""
    return isinstance(value, Unreadable)


def render(value: Value, string_limit: int) -> str:
    """*value* as strace prints it with ``-s`` *string_limit*."""
    if isinstance(value, str):
        return value
    if isinstance(value, Quoted):
        return _render_quoted(value, string_limit)
    if isinstance(value, Unreadable):
        return hex(value.address) if value.address else "NULL"
    if isinstance(value, Items):
        return _render_items(value, string_limit)
    return "".join(render(part, string_limit) for part in value.parts)


def _render_items(value: Items, limit: int) -> str:
    items = value.items
    cut = value.limit and len(items) > limit
    shown = [render(item, limit) for item in (items[:limit] if cut else items)]
    if cut or value.more:
        shown.append("...")
    if value.fault is not None and not cut:
        if value.more:
            shown[-1] = f"... /* {value.fault:#x} */"
        else:
            shown.append(f"... /* {value.fault:#x} */")
    return "[" + ", ".join(shown) + "]"


def _render_quoted(value: Quoted, limit: int) -> str:
    print_bytes = quote_hex if value.hexed else quote
    data = value.data
    if value.whole:
        return print_bytes(data, value.cut)
    if value.size is not None:  # a buffer of known length
        size = value.size
        shown = min(size, limit)
        return print_bytes(data[:shown], size > shown)
    if value.max_len is not None and value.max_len <= limit:
        # A NUL-terminated string in a buffer shorter than -s: "..." when its NUL is not in it.
        if len(data) >= value.max_len:
            return print_bytes(data[: value.max_len], True)
        return print_bytes(data)
    # A C string: strace reads -s bytes and adds "..." when none of them was the NUL.
    if len(data) > limit:
        return print_bytes(data[:limit], True)
    return print_bytes(data, value.cut)
