"""libvirt_nitro.gdbstub: the GDB remote protocol client and target descriptions.

Three parts: pure units (framing, escapes, run-length, stop replies, the captured QEMU 7.2
x86-64 target description); the client against a scripted fake stub on a unix socket (acks,
retransmission, queued stops, timeouts, a closing peer); and the client against QEMU's real
gdbstub on the shared TCG test guest, which every test leaves running (detach +
``gdbserver none``; the last test checks the guest still answers).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from libvirt_nitro.errors import GdbstubError, GdbstubErrorReply
from libvirt_nitro.gdbstub import (
    RspClient,
    StopReply,
    TargetDescription,
    checksum,
    decode_payload,
    escape,
    frame,
    parse_stop_reply,
    parse_thread_id,
)
from tests.support import wait_for

# QEMU 7.2's target.xml and i386-64bit.xml as read through qXfer:features:read on this host;
# the <flags>/<vector>/<union> type definitions are trimmed to one, the registers are intact.
TARGET_XML = (
    '<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target>'
    '<architecture>i386:x86-64</architecture><xi:include href="i386-64bit.xml"/></target>'
)
I386_64BIT_XML = """<?xml version="1.0"?>
<!-- Copyright (C) 2010-2017 Free Software Foundation, Inc.

     Copying and distribution of this file, with or without modification,
     are permitted in any medium without royalty provided the copyright
     notice and this notice are preserved.  -->

<!-- x86_64 64bit -->

<!DOCTYPE target SYSTEM "gdb-target.dtd">

<feature name="org.gnu.gdb.i386.core">
  <flags id="x64_efer" size="8">
	<field name="LMA" start="10" end="10"/>
	<field name="SCE" start="0" end="0"/>
  </flags>
  <reg name="rax" bitsize="64" type="int64" regnum="0"/>
  <reg name="rbx" bitsize="64" type="int64"/>
  <reg name="rcx" bitsize="64" type="int64"/>
  <reg name="rdx" bitsize="64" type="int64"/>
  <reg name="rsi" bitsize="64" type="int64"/>
  <reg name="rdi" bitsize="64" type="int64"/>
  <reg name="rbp" bitsize="64" type="data_ptr"/>
  <reg name="rsp" bitsize="64" type="data_ptr"/>
  <reg name="r8" bitsize="64" type="int64"/>
  <reg name="r9" bitsize="64" type="int64"/>
  <reg name="r10" bitsize="64" type="int64"/>
  <reg name="r11" bitsize="64" type="int64"/>
  <reg name="r12" bitsize="64" type="int64"/>
  <reg name="r13" bitsize="64" type="int64"/>
  <reg name="r14" bitsize="64" type="int64"/>
  <reg name="r15" bitsize="64" type="int64"/>

  <reg name="rip" bitsize="64" type="code_ptr"/>
  <reg name="eflags" bitsize="32" type="x64_eflags"/>

  <!-- Segment registers -->

  <reg name="cs" bitsize="32" type="int32"/>
  <reg name="ss" bitsize="32" type="int32"/>
  <reg name="ds" bitsize="32" type="int32"/>
  <reg name="es" bitsize="32" type="int32"/>
  <reg name="fs" bitsize="32" type="int32"/>
  <reg name="gs" bitsize="32" type="int32"/>

  <!--reg name="cs_base" bitsize="64" type="int64"/>
  <reg name="ss_base" bitsize="64" type="int64"/>
  <reg name="ds_base" bitsize="64" type="int64"/>
  <reg name="es_base" bitsize="64" type="int64"/-->
  <reg name="fs_base" bitsize="64" type="int64"/>
  <reg name="gs_base" bitsize="64" type="int64"/>
  <reg name="k_gs_base" bitsize="64" type="int64"/>

  <reg name="cr0" bitsize="64" type="x64_cr0"/>
  <reg name="cr2" bitsize="64" type="int64"/>
  <reg name="cr3" bitsize="64" type="x64_cr3"/>
  <reg name="cr4" bitsize="64" type="x64_cr4"/>
  <reg name="cr8" bitsize="64" type="int64"/>
  <reg name="efer" bitsize="64" type="x64_efer"/>

  <reg name="st0" bitsize="80" type="i387_ext"/>
  <reg name="st1" bitsize="80" type="i387_ext"/>
  <reg name="st2" bitsize="80" type="i387_ext"/>
  <reg name="st3" bitsize="80" type="i387_ext"/>
  <reg name="st4" bitsize="80" type="i387_ext"/>
  <reg name="st5" bitsize="80" type="i387_ext"/>
  <reg name="st6" bitsize="80" type="i387_ext"/>
  <reg name="st7" bitsize="80" type="i387_ext"/>

  <reg name="fctrl" bitsize="32" type="int" group="float"/>
  <reg name="fstat" bitsize="32" type="int" group="float"/>
  <reg name="ftag" bitsize="32" type="int" group="float"/>
  <reg name="fiseg" bitsize="32" type="int" group="float"/>
  <reg name="fioff" bitsize="32" type="int" group="float"/>
  <reg name="foseg" bitsize="32" type="int" group="float"/>
  <reg name="fooff" bitsize="32" type="int" group="float"/>
  <reg name="fop" bitsize="32" type="int" group="float"/>

  <reg name="xmm0" bitsize="128" type="vec128"/>
  <reg name="xmm1" bitsize="128" type="vec128"/>
  <reg name="xmm2" bitsize="128" type="vec128"/>
  <reg name="xmm3" bitsize="128" type="vec128"/>
  <reg name="xmm4" bitsize="128" type="vec128"/>
  <reg name="xmm5" bitsize="128" type="vec128"/>
  <reg name="xmm6" bitsize="128" type="vec128"/>
  <reg name="xmm7" bitsize="128" type="vec128"/>
  <reg name="xmm8" bitsize="128" type="vec128"/>
  <reg name="xmm9" bitsize="128" type="vec128"/>
  <reg name="xmm10" bitsize="128" type="vec128"/>
  <reg name="xmm11" bitsize="128" type="vec128"/>
  <reg name="xmm12" bitsize="128" type="vec128"/>
  <reg name="xmm13" bitsize="128" type="vec128"/>
  <reg name="xmm14" bitsize="128" type="vec128"/>
  <reg name="xmm15" bitsize="128" type="vec128"/>

  <reg name="mxcsr" bitsize="32" type="x64_mxcsr" group="vector"/>
</feature>
"""
QEMU_ANNEXES = {"target.xml": TARGET_XML, "i386-64bit.xml": I386_64BIT_XML}

CR0_PG = 1 << 31
EFER_SCE, EFER_LMA = 1 << 0, 1 << 10
UD_VECTOR = 6


def wire(payload: bytes) -> bytes:
    """A packet framed by hand (independent of the module under test)."""
    return b"$" + payload + b"#" + b"%02x" % (sum(payload) % 256)


# -- framing, escapes, run-length --------------------------------------------------------


def test_checksum_matches_captured_qemu_packets() -> None:
    # Captured from QEMU 7.2: the qSupported reply and a stop reply, with their checksums.
    qsupported = b"PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+"
    assert checksum(qsupported) == 0x92
    assert frame(b"T02thread:p01.01;") == b"$T02thread:p01.01;#03"
    assert frame(b"OK") == b"$OK#9a"
    assert frame(b"") == b"$#00"


def test_escape_covers_the_four_special_bytes() -> None:
    assert escape(b"plain") == b"plain"
    assert escape(b"a$b#c}d*e") == b"a}\x04b}\x03c}]d}\x0ae"
    body = frame(b"x*y")[1:-3]
    assert body == b"x}\x0ay" and b"*" not in body


def test_decode_payload_round_trips_every_byte() -> None:
    data = bytes(range(256)) * 2
    encoded = escape(data)
    assert b"$" not in encoded and b"#" not in encoded and b"*" not in encoded
    assert decode_payload(encoded) == data


def test_decode_payload_run_length() -> None:
    assert decode_payload(b"0* ") == b"0000"  # ' ' = 32 = 3 + 29: three more
    assert decode_payload(b'ab*"c') == b"abbbbbbc"  # '"' = 34: five more
    assert decode_payload(b"x}]*!") == b"x}}}}}"  # an escaped byte repeated: '!' = 4 more
    assert decode_payload(b"}]}\x03") == b"}#"
    for bad in (b"abc}", b"abc*", b"*!abc"):
        with pytest.raises(GdbstubError):
            decode_payload(bad)


# -- stop replies and thread ids ---------------------------------------------------------


def test_parse_stop_reply_forms() -> None:
    assert parse_stop_reply("T05thread:p01.02;") == StopReply(5, 2, "T05thread:p01.02;")
    assert parse_stop_reply("T02thread:01;").thread == 1
    assert parse_stop_reply("T05watch:ffff8880;thread:p1.2;").thread == 2
    assert parse_stop_reply("S05") == StopReply(5, None, "S05")
    for exited in ("W00", "X09"):
        with pytest.raises(GdbstubError, match="target"):
            parse_stop_reply(exited)
    for bad in ("OK", "T", "Tzz", ""):
        with pytest.raises(GdbstubError):
            parse_stop_reply(bad)


def test_parse_thread_id() -> None:
    assert parse_thread_id("p01.02") == (1, 2)
    assert parse_thread_id("p1.-1") == (1, -1)
    assert parse_thread_id("0a") == (None, 10)
    with pytest.raises(GdbstubError):
        parse_thread_id("pxx.1")


# -- target descriptions -----------------------------------------------------------------


def qemu_tdesc() -> TargetDescription:
    return TargetDescription.parse(QEMU_ANNEXES.__getitem__)


def test_qemu_target_description_layout() -> None:
    tdesc = qemu_tdesc()
    assert tdesc.architecture == "i386:x86-64"
    assert tdesc.g_size == 608 and len(tdesc.registers) == 66
    assert [reg.regnum for reg in tdesc.registers] == list(range(66))
    offsets = {name: tdesc[name].offset for name in ("rip", "eflags", "cs", "ss", "ds", "gs")}
    assert offsets == {"rip": 128, "eflags": 136, "cs": 140, "ss": 144, "ds": 148, "gs": 160}
    assert (tdesc["fs_base"].offset, tdesc["cr0"].offset, tdesc["cr3"].offset) == (164, 188, 204)
    assert (tdesc["efer"].offset, tdesc["efer"].regnum, tdesc["efer"].bitsize) == (228, 32, 64)
    assert (tdesc["st0"].size, tdesc["xmm0"].offset, tdesc["mxcsr"].end) == (10, 348, 608)
    assert tdesc["rip"].type == "code_ptr" and tdesc["rax"].feature == "org.gnu.gdb.i386.core"
    with pytest.raises(KeyError):
        tdesc["lstar"]


def test_regnum_defaults_and_resets() -> None:
    xml = (
        '<target xmlns:xi="http://www.w3.org/2001/XInclude"><feature name="a">'
        '<reg name="r0" bitsize="32"/><reg name="r1" bitsize="16"/>'
        '<reg name="r9" bitsize="8" regnum="9"/></feature><xi:include href="b.xml"/></target>'
    )
    included = (
        '<feature name="b"><reg name="r10" bitsize="64"/>'
        '<reg name="r5" bitsize="32" regnum="5"/><reg name="r6" bitsize="8"/></feature>'
    )
    tdesc = TargetDescription.parse({"target.xml": xml, "b.xml": included}.__getitem__)
    assert [(r.name, r.regnum, r.offset) for r in tdesc.registers] == [
        ("r0", 0, 0),
        ("r1", 1, 4),
        ("r5", 5, 6),
        ("r6", 6, 10),
        ("r9", 9, 11),
        ("r10", 10, 12),
    ]
    assert tdesc.g_size == 20 and tdesc.architecture == ""


def test_target_description_errors() -> None:
    loop = {"target.xml": '<target><xi:include href="target.xml"/></target>'}
    with pytest.raises(GdbstubError, match="nested"):
        TargetDescription.parse(loop.__getitem__)
    with pytest.raises(GdbstubError, match="well-formed"):
        TargetDescription.parse({"target.xml": "<target><feature>"}.__getitem__)
    twice = (
        '<feature name="f"><reg name="a" bitsize="8"/>'
        '<reg name="b" bitsize="8" regnum="0"/></feature>'
    )
    with pytest.raises(GdbstubError, match="number 0"):
        TargetDescription.parse({"target.xml": twice}.__getitem__)
    entity = (
        '<?xml version="1.0"?><!DOCTYPE feature [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        '<feature name="f"><reg name="a" bitsize="8"/><architecture>&e;</architecture></feature>'
    )
    assert TargetDescription.parse({"target.xml": entity}.__getitem__).architecture == ""


def test_decode_and_encode_prefix() -> None:
    tdesc = qemu_tdesc()
    g = bytearray(range(256)) * 2 + bytearray(96)
    g[128:136] = (0xFFFFFFFF81000000).to_bytes(8, "little")
    g[228:236] = (EFER_LMA | EFER_SCE | 0x100).to_bytes(8, "little")
    g[348:364] = bytes(range(16))
    values = tdesc.decode(bytes(g))
    assert len(values) == 66
    assert values["rip"] == 0xFFFFFFFF81000000 and values["efer"] == 0x501
    assert values["rax"] == int.from_bytes(bytes(range(8)), "little")
    assert values["xmm0"] == int.from_bytes(bytes(range(16)), "little")
    assert set(tdesc.decode(bytes(g[:150]))) == {reg.name for reg in tdesc.registers[:20]}

    prefix = tdesc.encode_prefix({"rax": -38, "rip": 0x1234, "ss": 0x2B}, bytes(g), "ss")
    assert len(prefix) == 148 and prefix[8:128] == g[8:128]
    assert tdesc.decode(prefix)["rax"] == 2**64 - 38
    assert prefix[128:136] == (0x1234).to_bytes(8, "little") and prefix[144:148] == b"\x2b\0\0\0"
    assert tdesc.encode_prefix({}, bytes(g), "efer") == bytes(g[:236])
    with pytest.raises(ValueError, match="beyond"):
        tdesc.encode_prefix({"efer": 0}, bytes(g), "ss")
    with pytest.raises(ValueError, match="fit"):
        tdesc.encode_prefix({"cs": 1 << 32}, bytes(g), "ss")
    with pytest.raises(ValueError, match="base"):
        tdesc.encode_prefix({}, bytes(g[:100]), "ss")


# -- the client against a scripted stub ----------------------------------------------------

Answer = bytes | Callable[[bytes], bytes | None] | None


class FakeStub:
    """A gdbstub on a unix socket that acks like QEMU (``+`` per packet) and answers from
    *answers* (payload → wire bytes, a function of the payload, or None for silence)."""

    def __init__(self, directory: str, answers: dict[bytes, Answer], greeting: bytes = b"") -> None:
        self.path = os.path.join(directory, "stub.sock")
        self.answers = {
            b"qSupported:multiprocess+;xmlRegisters=i386": wire(b"PacketSize=1000;multiprocess+")
        }
        self.answers.update(answers)
        self.greeting = greeting
        self.packets: list[bytes] = []
        self.raw = bytearray()
        self.last = b""
        self.resend: bytes | None = None  # sent on '-' instead of the last answer
        self.conn: socket.socket | None = None
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.server.accept()
        self.conn = conn
        if self.greeting:
            conn.sendall(self.greeting)
        buf = b""
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            self.raw += data
            buf += data
            while True:
                start = buf.find(b"$")
                noise = buf if start < 0 else buf[:start]
                if b"-" in noise and (self.resend or self.last):
                    conn.sendall(self.resend or self.last)
                if start < 0:
                    buf = b""
                    break
                end = buf.find(b"#", start)
                if end < 0 or len(buf) < end + 3:
                    buf = buf[start:]
                    break
                payload, buf = buf[start + 1 : end], buf[end + 3 :]
                self.packets.append(payload)
                # Like QEMU: resuming is answered by the next stop only, the rest by default
                # with an empty packet (not supported).
                silent = payload.startswith(b"vCont;")
                answer = self.answers.get(payload, None if silent else wire(b""))
                if callable(answer):
                    answer = answer(payload)
                if answer is not None:
                    self.last = answer if answer.startswith(b"$") else self.last
                    try:
                        conn.sendall(b"+" + answer if answer.startswith(b"$") else answer)
                    except OSError:
                        return

    def close_client(self) -> None:
        assert self.conn is not None
        self.conn.shutdown(socket.SHUT_RDWR)
        self.conn.close()

    def close(self) -> None:
        self.server.close()
        if self.conn is not None:
            self.conn.close()


@pytest.fixture
def stub_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="nitro-stub-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.fixture
def make_stub(stub_dir: str) -> Iterator[Callable[..., FakeStub]]:
    stubs: list[FakeStub] = []

    def make(answers: dict[bytes, Answer] | None = None, greeting: bytes = b"") -> FakeStub:
        stubs.append(FakeStub(stub_dir, answers or {}, greeting))
        return stubs[-1]

    yield make
    for stub in stubs:
        stub.close()


def test_unsolicited_stop_is_queued_not_taken_for_a_reply(make_stub) -> None:
    stub = make_stub({b"qAttached": wire(b"1")}, greeting=wire(b"T02thread:01;"))
    with RspClient(stub.path, timeout=2) as client:
        assert client.multiprocess and client.packet_size == 0x1000
        assert client.command("qAttached") == "1"
        assert client.wait_stop(0) == StopReply(2, 1, "T02thread:01;")
        assert client.wait_stop(0) is None
        assert b"?" not in stub.packets


def test_paused_vm_at_connect_asks_for_the_stop(make_stub) -> None:
    stub = make_stub({b"?": wire(b"T05thread:p01.02;")})
    with RspClient(stub.path, timeout=2) as client:
        assert client.interrupt() == StopReply(5, 2, "T05thread:p01.02;")
        assert stub.packets[-1] == b"?"


def test_nack_retransmits_and_bad_checksum_is_nacked(make_stub) -> None:
    answers: dict[bytes, Answer] = {}
    tries = {"qAttached": 0, "qC": 0}

    def nack_once(payload: bytes) -> bytes:
        tries["qAttached"] += 1
        return b"-" if tries["qAttached"] == 1 else wire(b"1")

    def corrupt_once(payload: bytes) -> bytes:
        tries["qC"] += 1
        stub.resend = wire(b"QCp01.01")
        return b"$QCp01.01#00" if tries["qC"] == 1 else wire(b"QCp01.01")

    answers[b"qAttached"] = nack_once
    answers[b"qC"] = corrupt_once
    stub = make_stub(answers, greeting=wire(b"T02thread:01;"))
    with RspClient(stub.path, timeout=2) as client:
        sent = client.packets_sent
        assert client.command("qAttached") == "1"
        assert stub.packets.count(b"qAttached") == 2 and client.packets_sent == sent + 2
        assert client.command("qC") == "QCp01.01"  # the stub resent it on our '-'
    assert b"-" in stub.raw and stub.raw.count(b"+") >= 3  # acks of the client


def test_binary_reply_split_into_single_bytes(make_stub) -> None:
    xml = b"<a>}$#*</a>" + b"x" * 40

    def trickle(payload: bytes) -> bytes:
        packet = b"+" + wire(b"l" + escape(xml[:11]) + b"x* x* " + b"x" * 32)
        for byte in packet:
            stub.conn.sendall(bytes([byte]))
            time.sleep(0.001)
        return b""

    stub = make_stub({b"qXfer:features:read:target.xml:0,ff0": trickle})
    stub.answers[b"?"] = wire(b"S05")
    with RspClient(stub.path, timeout=2) as client:
        assert client.fetch_annex("target.xml").encode() == xml


def test_error_reply_keeps_the_connection(make_stub) -> None:
    stub = make_stub({b"m0,8": wire(b"E14"), b"m1000,4": wire(b"01020304")}, wire(b"T02thread:01;"))
    with RspClient(stub.path, timeout=2) as client:
        with pytest.raises(GdbstubErrorReply) as caught:
            client.read_memory(0, 8)
        assert caught.value.code == 0x14 and caught.value.packet == "m0,8"
        assert client.read_memory(0x1000, 4) == b"\1\2\3\4"


def test_silent_stub_times_out_and_closes(make_stub) -> None:
    stub = make_stub({b"g": None}, wire(b"T02thread:01;"))
    client = RspClient(stub.path, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(GdbstubError, match="no reply"):
        client.read_registers()
    assert time.monotonic() - started < 1.5
    assert client.closed
    with pytest.raises(GdbstubError, match="closed"):
        client.read_registers()


def test_closed_peer_raises(make_stub) -> None:
    stub = make_stub({}, wire(b"T02thread:01;"))
    client = RspClient(stub.path, timeout=5)
    client.resume()
    wait_for(lambda: b"vCont;c" in stub.packets, "the stub to receive vCont;c", timeout=5)
    stub.close_client()
    started = time.monotonic()
    with pytest.raises(GdbstubError, match="closed the connection|connection lost"):
        client.wait_stop()
    assert time.monotonic() - started < 1


def test_nothing_but_interrupt_while_running(make_stub) -> None:
    stub = make_stub({}, wire(b"T02thread:01;"))
    with RspClient(stub.path, timeout=2) as client:
        client.resume()
        with pytest.raises(GdbstubError, match="running"):
            client.read_registers()
        with pytest.raises(GdbstubError, match="running"):
            client.resume()
        assert client.wait_stop(0.05) is None
        stub.conn.sendall(wire(b"T05thread:p01.02;"))
        # The stop crossed the \x03 (QEMU ignores \x03 when stopped): it is the answer.
        assert client.interrupt() == StopReply(5, 2, "T05thread:p01.02;")
        assert client.interrupt().thread == 2  # known to be stopped: nothing sent
        wait_for(lambda: b"\x03" in stub.raw, "the stub to receive \\x03", timeout=5)
        assert stub.raw.count(b"\x03") == 1


def test_thread_selection_cache(make_stub) -> None:
    stub = make_stub(
        {b"Hgp1.2": wire(b"OK"), b"Hgp1.1": wire(b"OK"), b"g": wire(b"00" * 8)},
        wire(b"T02thread:p01.01;"),
    )
    with RspClient(stub.path, timeout=2) as client:
        client.read_registers(1)  # QEMU made the stopping vCPU the g thread: no Hg
        client.read_registers(2)
        client.read_registers(2)
        assert [p for p in stub.packets if p.startswith(b"H")] == [b"Hgp1.2"]
        client.resume(step_thread=2)
        wait_for(lambda: b"vCont;s:p1.2" in stub.packets, "the stub to receive vCont;s", 5)
        stub.conn.sendall(wire(b"T05thread:p01.02;"))
        assert client.wait_stop().thread == 2
        client.read_registers(2)
        client.read_registers(1)
        assert [p for p in stub.packets if p.startswith(b"H")] == [b"Hgp1.2", b"Hgp1.1"]


def test_command_special_cases(make_stub) -> None:
    stub = make_stub(
        {b"?": wire(b"T05thread:p01.02;"), b"Hgp1.2": wire(b"OK"), b"g": wire(b"00")},
        wire(b"T02thread:p01.01;"),
    )
    with RspClient(stub.path, timeout=2) as client:
        assert client.command("?") == "T05thread:p01.02;"
        for resuming in ("c", "s", "C05", "vCont;c"):
            with pytest.raises(ValueError, match="resume"):
                client.command(resuming)
        client.read_registers(2)
        client.command("Hgp1.2")  # the cache cannot know what this selected: forgotten
        client.read_registers(2)
        assert stub.packets.count(b"Hgp1.2") == 3


def test_monitor_collects_console_packets(make_stub) -> None:
    command = b"qRcmd," + b"info status".hex().encode()
    text = "VM status: paused\r\n"
    reply = (
        wire(b"O" + text[:5].encode().hex().encode())
        + wire(b"O" + text[5:].encode().hex().encode())
        + wire(b"OK")
    )
    stub = make_stub({command: reply}, wire(b"T02thread:01;"))
    with RspClient(stub.path, timeout=2) as client:
        assert client.monitor("info status") == text


def test_no_ack_mode_when_offered(make_stub) -> None:
    stub = make_stub(
        {
            b"qSupported:multiprocess+;xmlRegisters=i386": wire(b"PacketSize=800;QStartNoAckMode+"),
            b"QStartNoAckMode": wire(b"OK"),
            b"qAttached": wire(b"1"),
            b"D": wire(b"OK"),
        },
        wire(b"T02thread:01;"),
    )
    with RspClient(stub.path, timeout=2) as client:
        assert not client.multiprocess and client.packet_size == 0x800
        assert client.command("qAttached") == "1"
        assert client.command("qAttached") == "1"
        # The OK of QStartNoAckMode is the last packet acked.
        assert stub.raw.endswith(b"#b0+$qAttached#8f$qAttached#8f")
        client.detach()
        assert stub.packets[-1] == b"D"


def test_connect_refused(stub_dir: str) -> None:
    with pytest.raises(GdbstubError, match="cannot connect") as caught:
        RspClient(os.path.join(stub_dir, "nobody.sock"), timeout=1)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


# -- against QEMU 7.2's gdbstub on the TCG test guest -------------------------------------


def hmp(dom: Any, command: str) -> str:
    import libvirt_qemu

    return libvirt_qemu.qemuMonitorCommand(
        dom, command, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
    )


def start_gdbserver(dom: Any, path: str) -> None:
    output = hmp(dom, f"gdbserver unix:{path},server=on,wait=off")
    assert "Waiting for gdb connection" in output, output


def stop_gdbserver(dom: Any) -> None:
    """``gdbserver none``, then resume the VM if a vanished client left it stopped."""
    import libvirt
    import libvirt_qemu

    def running() -> bool:
        reply = libvirt_qemu.qemuMonitorCommand(dom, '{"execute": "query-status"}', 0)
        return bool(json.loads(reply)["return"]["running"])

    hmp(dom, "gdbserver none")
    if not running():
        try:
            dom.resume()
        except libvirt.libvirtError:  # libvirt has not seen QEMU's STOP event yet
            libvirt_qemu.qemuMonitorCommand(dom, '{"execute": "cont"}', 0)
    wait_for(running, "the test guest to run again", timeout=10)


@pytest.fixture(scope="module")
def gdbserver(tcg_guest) -> Iterator[str]:
    """QEMU's gdbstub on a socket in a libvirt-qemu-owned 0700 directory (its path)."""
    qemu_user = pwd.getpwnam("libvirt-qemu")
    directory = tempfile.mkdtemp(prefix="nitro-gdb-")
    os.chown(directory, qemu_user.pw_uid, qemu_user.pw_gid)
    os.chmod(directory, 0o700)
    path = os.path.join(directory, "gdb.sock")
    start_gdbserver(tcg_guest.dom, path)
    try:
        yield path
    finally:
        stop_gdbserver(tcg_guest.dom)
        shutil.rmtree(directory, ignore_errors=True)
        assert tcg_guest.run("getpid", "1").exit_code == 0


@pytest.fixture
def client(gdbserver: str) -> Iterator[RspClient]:
    """A client connected to QEMU (the VM is stopped); detached (VM resumed) afterwards."""
    rsp = RspClient(gdbserver, timeout=10)
    try:
        yield rsp
    finally:
        if not rsp.closed:
            try:
                rsp.detach()
            except GdbstubError:
                rsp.close()


def idt_base(rsp: RspClient) -> int:
    registers = rsp.monitor("info registers")
    fields = registers.split("IDT=", 1)[1].split()
    return int(fields[0], 16)


def test_qemu_handshake_and_threads(client: RspClient) -> None:
    assert client.multiprocess and client.packet_size == 0x1000
    stop = client.wait_stop(0)
    assert stop is not None and stop.thread == 1  # connecting stopped the VM
    assert client.threads() == [1, 2]


def test_qemu_target_description_and_registers(client: RspClient) -> None:
    tdesc = client.target_description()
    assert client.target_description() is tdesc
    assert tdesc.architecture == "i386:x86-64" and tdesc.g_size == 608
    # Offsets follow from the XML QEMU serves: 16 GPRs, rip, eflags, then the selectors.
    assert [tdesc[name].offset for name in ("rip", "eflags", "cs", "ss")] == [128, 136, 140, 144]
    assert tdesc.registers == qemu_tdesc().registers
    for thread in client.threads():
        g = client.read_registers(thread)
        assert len(g) == tdesc.g_size
        regs = tdesc.decode(g)
        assert regs["cr0"] & CR0_PG and regs["efer"] & EFER_LMA and regs["efer"] & EFER_SCE
        rip = client.read_register(tdesc["rip"].regnum, thread)
        assert int.from_bytes(rip, "little") == regs["rip"]


def test_qemu_stop_makes_the_stopping_vcpu_current(client: RspClient) -> None:
    # At connect QEMU made vCPU 1 the g and c thread; make 2 the g thread, then stop.
    client.select_thread(2)
    client.resume()
    stop = client.interrupt()
    assert stop.signal == signal.SIGINT and stop.thread == 1  # \x03 names the c thread
    sent = client.packets_sent
    current = client.read_registers(stop.thread)
    assert client.packets_sent == sent + 1  # no Hg: the stop made thread 1 current
    # Check that against QEMU, behind the cache's back.
    client.command("Hg" + client.thread_id(1))
    assert client.read_registers() == current
    client.command("Hg" + client.thread_id(2))
    assert client.read_registers() != current


def test_qemu_read_memory_of_the_idt(client: RspClient) -> None:
    base = idt_base(client)
    assert base == 0xFFFFFE0000000000
    idt = client.read_memory(base, 4096)  # more than one packet's worth
    assert len(idt) == 4096
    for vector in (0, UD_VECTOR, 14):
        gate = client.read_memory(base + 16 * vector, 16)
        assert gate == idt[16 * vector : 16 * vector + 16]
        assert int.from_bytes(gate[2:4], "little") == 0x10 and gate[5] == 0x8E
    with pytest.raises(GdbstubErrorReply) as caught:
        client.read_memory(0, 8)
    assert caught.value.code == 0x14


def ud_handler(rsp: RspClient) -> int:
    gate = rsp.read_memory(idt_base(rsp) + 16 * UD_VECTOR, 16)
    low, high, top = (
        int.from_bytes(gate[0:2], "little"),
        int.from_bytes(gate[6:8], "little"),
        int.from_bytes(gate[8:12], "little"),
    )
    return low | high << 16 | top << 32


def test_qemu_breakpoint_on_the_ud_handler(client: RspClient, tcg_guest) -> None:
    tdesc = client.target_description()
    handler = ud_handler(client)
    client.insert_breakpoint(handler)
    client.resume()
    with ThreadPoolExecutor(1) as pool:
        command = pool.submit(tcg_guest.run, "ud2")
        try:
            stop = client.wait_stop(timeout=60)
            assert stop is not None and stop.signal == signal.SIGTRAP
            assert stop.thread in (1, 2)
            regs = tdesc.decode(client.read_registers(stop.thread))
            assert regs["rip"] == handler and regs["cs"] == 0x10
            frame_ = client.read_memory(regs["rsp"], 40)  # the #UD frame: rip cs rflags rsp ss
            assert int.from_bytes(frame_[8:16], "little") == 0x33  # it faulted in user mode
            other = 3 - stop.thread
            assert tdesc.decode(client.read_registers(other))["rip"] != handler

            client.remove_breakpoint(handler)
            step = client.step(stop.thread)
            assert step.thread == stop.thread and step.signal == signal.SIGTRAP
            stepped = tdesc.decode(client.read_registers(stop.thread))
            assert stepped["rip"] != handler

            g = client.read_registers(stop.thread)
            client.write_registers(tdesc.encode_prefix({}, g, "ss"), stop.thread)
            assert client.read_registers(stop.thread) == g
            client.resume()
            result = command.result(timeout=60)
        finally:
            if not command.done():
                client.detach()  # removes the breakpoint, resumes: the command can end
                command.result(timeout=60)
    assert result.exit_code == 0 and result.values["ud2_child_signal"] == str(int(signal.SIGILL))
    client.interrupt()


def test_qemu_write_register_round_trip(client: RspClient, tcg_guest) -> None:
    tdesc = client.target_description()
    efer = tdesc["efer"]
    value = client.read_register(efer.regnum, 2)
    client.write_register(efer.regnum, value, 2)
    assert client.read_register(efer.regnum, 2) == value
    client.detach()
    assert tcg_guest.run("getpid", "2").exit_code == 0


def test_qemu_dead_socket_while_stopped(client: RspClient, gdbserver: str, tcg_guest) -> None:
    client.read_registers()
    try:
        hmp(tcg_guest.dom, "gdbserver none")
        started = time.monotonic()
        with pytest.raises(GdbstubError):
            client.read_registers()
        assert time.monotonic() - started < client.timeout
        assert client.closed
    finally:
        stop_gdbserver(tcg_guest.dom)
        start_gdbserver(tcg_guest.dom, gdbserver)


def test_qemu_dead_socket_while_running(client: RspClient, gdbserver: str, tcg_guest) -> None:
    client.resume()
    try:
        hmp(tcg_guest.dom, "gdbserver none")
        started = time.monotonic()
        with pytest.raises(GdbstubError, match="closed the connection|connection lost"):
            client.wait_stop()
        assert time.monotonic() - started < client.timeout
    finally:
        stop_gdbserver(tcg_guest.dom)
        start_gdbserver(tcg_guest.dom, gdbserver)


def test_qemu_guest_keeps_running_after_the_stub_tests(client: RspClient, tcg_guest) -> None:
    client.detach()
    assert tcg_guest.run("getpid", "1").exit_code == 0
