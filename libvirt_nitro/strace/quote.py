"""Byte strings as strace prints them: double quotes, C escapes, octal, ``...`` when cut.

strace's rules (``string_quote()`` in strace's ``util.c``, observed with strace 6.1):
``\\t \\n \\v \\f \\r \\" \\\\`` as C escapes, other bytes outside ``0x20..0x7e`` in octal
with the fewest digits unless the next byte is an octal digit (``\\1`` but ``\\0011``), and
``...`` after the closing quote when the string was cut at the limit.
"""

from __future__ import annotations

import re

__all__ = ["quote", "quote_hex"]

_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"'}
_ESCAPES[0x5C] = "\\\\"


_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in (0x22, 0x5C))
_DROP_PLAIN = bytes.maketrans(b"", b"")


#: A byte that is not printed as itself (as a latin-1 character), and whether an octal
#: digit follows it (then its octal escape takes three digits).
_SPECIAL = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]((?=[0-7]))?")
_SHORT = {chr(c): _ESCAPES.get(c, f"\\{c:o}") for c in range(256)}
_LONG = {chr(c): _ESCAPES.get(c, f"\\{c:03o}") for c in range(256)}


def _escape(match: re.Match[str]) -> str:
    table = _SHORT if match.group(1) is None else _LONG
    return table[match.group()[0]]


def quote(data: bytes, truncated: bool = False) -> str:
    """*data* as a quoted C string, followed by ``...`` if *truncated*."""
    if not data.translate(_DROP_PLAIN, _PLAIN):  # printable ASCII only: nothing to escape
        return f'"{data.decode("ascii")}"' + ("..." if truncated else "")
    text = _SPECIAL.sub(_escape, data.decode("latin-1"))
    return f'"{text}"...' if truncated else f'"{text}"'


def quote_hex(data: bytes, truncated: bool = False) -> str:
    """*data* with every byte as ``\\xNN`` (strace's forced-hex style, e.g. getrandom)."""
    return '"' + "".join(f"\\x{c:02x}" for c in data) + '"' + ("..." if truncated else "")
