"""The decode-speed rewrites (bench/decode_rate.py) print what the plain forms printed: the
quoting by regular expression against strace's byte-by-byte rule, the memoised flag and
value tables against a fresh computation, and the ring's copy of what a slot holds."""

from __future__ import annotations

import random

from libvirt_nitro.abi.capture import capture
from libvirt_nitro.abi.event import EVENT_SYSCALL, Event
from libvirt_nitro.abi.recipe import ENTRY, EVENT_F_CAPTURE, Recipe, Rule
from libvirt_nitro.abi.ring import EVENT_SIZE, Ring
from libvirt_nitro.linux import flags as F
from libvirt_nitro.strace import xlat
from libvirt_nitro.strace.quote import _ESCAPES, quote
from libvirt_nitro.testing.memory import FakeMemory


def quote_bytewise(data: bytes, truncated: bool = False) -> str:
    """strace's string_quote(), byte by byte."""
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


def test_quote_is_strace_byte_by_byte():
    rng = random.Random(15)
    tricky = b'0123456789\\"\n\t\r\v\f abc\x00\x01\x7f\x80\xff'
    cases = [bytes(range(256)), b"\x0012", b"\x1b[0m", b"a\\b", b""]
    for _ in range(20000):
        n = rng.randint(0, 16)
        cases.append(bytes(rng.choice([rng.randrange(256), rng.choice(tricky)]) for _ in range(n)))
    for data in cases:
        for cut in (False, True):
            assert quote(data, cut) == quote_bytewise(data, cut), data


def test_memoised_tables_give_the_computed_text():
    for table, dflt in ((F.OPEN_FLAGS, "O_???"), (F.POLL_EVENTS, "POLL???")):
        for value in (0, 1, 0x80000, 0x40, 0x7FFF_FFFF, 3, 1 << 40):
            first = xlat.flag_set(value, table, "0", dflt)
            assert first == xlat._flag_set(value, table, "0", dflt)
            assert xlat.flag_set(value, table, "0", dflt) == first
    for value in (0, 1, 2, 99, -5):
        for fmt in ("x", "d", "u"):
            assert xlat.xval(value, F.WHENCE, "SEEK_???", fmt) == xlat._xval(
                value, F.WHENCE, "SEEK_???", fmt
            )
    # a table that dies does not lend its cached texts to a new one at its address
    for _ in range(100):
        table = tuple((f"A{i}", 1 << i) for i in range(3))
        assert xlat.flag_set(1, table) == "A0"
        table = (("B0", 1),)
        assert xlat.flag_set(1, table) == "B0"


def test_ring_hands_out_what_each_slot_holds():
    ring = Ring(4, slot_size=1024)
    plain = Event.build(lambda ev: setattr(ev, "type", EVENT_SYSCALL)).raw
    area = capture(
        Recipe((Rule(1, ENTRY, 1, 2, 20),)), ENTRY, 1, [1, 0x10, 0, 0, 0, 0, 0], 0, FakeMemory()
    )

    def with_captures(ev) -> None:
        ev.type, ev.flags = EVENT_SYSCALL, EVENT_F_CAPTURE

    flagged = Event.build(with_captures).raw + area
    assert ring.push(plain) and ring.push(flagged)
    raws, _ = ring.drain()
    assert [len(raw) for raw in raws] == [EVENT_SIZE, EVENT_SIZE + len(area)]
    assert raws[1][EVENT_SIZE:] == area  # (the ring numbered the event: its seq)
