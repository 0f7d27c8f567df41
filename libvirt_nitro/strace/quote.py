"""Byte strings as strace prints them: double quotes, C escapes, octal, ``...`` when cut.

strace's rules (``string_quote()`` in strace's ``util.c``, observed with strace 6.1):
``\\t \\n \\v \\f \\r \\" \\\\`` as C escapes, other bytes outside ``0x20..0x7e`` in octal
with the fewest digits unless the next byte is an octal digit (``\\1`` but ``\\0011``), and
``...`` after the closing quote when the string was cut at the limit.
"""

from __future__ import annotations

__all__ = ["quote", "quote_hex"]

_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"'}
_ESCAPES[0x5C] = "\\\\"


_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in (0x22, 0x5C))
_DROP_PLAIN = bytes.maketrans(b"", b"")


def quote(data: bytes, truncated: bool = False) -> str:
    """*data* as a quoted C string, followed by ``...`` if *truncated*."""
    if not data.translate(_DROP_PLAIN, _PLAIN):  # printable ASCII only: nothing to escape
        return f'"{data.decode("ascii")}"' + ("..." if truncated else "")
    out = ['"']
    for i, c in enumerate(data):
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif 0x20 <= c <= 0x7E:
            out.append(chr(c))
        else:
            following = data[i + 1] if i + 1 < len(data) else None
            if following is not None and 0x30 <= following <= 0x37:
                out.append(f"\\{c:03o}")
            else:
                out.append(f"\\{c:o}")
    out.append('"')
    if truncated:
        out.append("...")
    return "".join(out)


def quote_hex(data: bytes, truncated: bool = False) -> str:
    """*data* with every byte as ``\\xNN`` (strace's forced-hex style, e.g. getrandom)."""
    return '"' + "".join(f"\\x{c:02x}" for c in data) + '"' + ("..." if truncated else "")
