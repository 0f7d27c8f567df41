"""GDB remote serial protocol client for QEMU's gdbstub.

The trap engine drives QEMU's gdbstub (started on a private unix socket through libvirt's
monitor, ``gdbserver unix:PATH,server=on,wait=off``) with this client: read and write
registers and memory, insert breakpoints, resume or single-step one vCPU and wait for the
next stop. Every guest system call costs a stop and a few packets, so the client is lean
(buffered 64 KiB reads, no per-byte loops) and never hangs: every wait has a deadline, a
silent stub or a closed socket raises :class:`~libvirt_nitro.errors.GdbstubError`.

Protocol (GDB manual, "Remote Protocol"): packets are ``$payload#cc`` with ``cc`` the
payload's byte sum mod 256 in hex; ``}`` escapes ``$ # } *`` as the byte xor 0x20 and
``*`` followed by chr(n + 29) repeats the previous byte n more times. Each packet is
acknowledged with ``+`` (``-`` asks for a retransmission) until ``QStartNoAckMode``.

QEMU 7.2 (system emulation) behaviour this module relies on, measured on this host:

- Connecting stops the VM and, if it was running, QEMU sends an unsolicited stop reply
  (``T02thread:01;``) before it reads anything from the client; it is queued for
  :meth:`RspClient.wait_stop`, never taken for a command's reply.
- ``QStartNoAckMode`` is not offered: every packet is acknowledged. QEMU acks what it
  receives and does not wait for (nor retransmit on) the client's acks.
- **While the VM runs, any byte QEMU receives stops the VM and is discarded** (it is the
  interrupt); a packet sent then is lost. So nothing but ``\\x03`` may be sent between
  :meth:`RspClient.resume` and the next stop; :meth:`RspClient.command` refuses to.
- ``\\x03`` while the VM is already stopped is ignored (no reply).
- All-stop: a stop stops every vCPU; ``vCont;s:THREAD`` steps one vCPU, the others stay
  stopped. Every stop makes the stopping vCPU QEMU's current ``g`` and ``c`` thread
  (``gdb_set_stop_cpu()``), so register access to it needs no ``Hg``.
- ``?`` removes every breakpoint. ``D`` answers ``E22`` in multiprocess mode, ``D;1``
  removes all breakpoints and resumes the VM.
"""

from __future__ import annotations

import binascii
import re
import select
import socket
import time
from collections import deque
from dataclasses import dataclass

from ..errors import GdbstubError, GdbstubErrorReply
from .tdesc import TargetDescription

__all__ = [
    "RspClient",
    "StopReply",
    "checksum",
    "escape",
    "frame",
    "decode_payload",
    "parse_stop_reply",
    "parse_thread_id",
    "SIGNAL_INT",
    "SIGNAL_TRAP",
]

#: Bytes of one socket read.
RECV_SIZE = 65536
#: Retransmissions of one packet on ``-`` before giving up.
MAX_RETRANSMITS = 3
#: Packet size assumed until qSupported tells (GDB's default).
DEFAULT_PACKET_SIZE = 400
#: What the client tells qSupported: multiprocess thread ids, x86 register names.
QSUPPORTED = b"qSupported:multiprocess+;xmlRegisters=i386"

_NEEDS_ESCAPE = re.compile(rb"[$#}*]")
_ESCAPE_OR_RLE = re.compile(rb"[}*]")
#: GDB signal numbers (not host signals): SIGINT as reported by ``\x03``, SIGTRAP.
SIGNAL_INT = 2
SIGNAL_TRAP = 5


def checksum(payload: bytes) -> int:
    """The RSP checksum of *payload* (as sent, i.e. escaped): byte sum modulo 256."""
    return sum(payload) & 0xFF


def escape(payload: bytes) -> bytes:
    """Escape ``$ # } *`` in *payload* as ``}`` followed by the byte xor 0x20."""
    if _NEEDS_ESCAPE.search(payload) is None:
        return payload
    return _NEEDS_ESCAPE.sub(lambda m: bytes((0x7D, m.group()[0] ^ 0x20)), payload)


def frame(payload: bytes) -> bytes:
    """The packet ``$payload#cc`` for *payload* (escaped here if it needs it)."""
    body = escape(payload)
    return b"$%s#%02x" % (body, sum(body) & 0xFF)


def decode_payload(body: bytes) -> bytes:
    """Undo escapes and run-length encoding of a received packet's body.

    Left to right: ``}x`` is the byte ``x ^ 0x20``; ``*c`` repeats the byte before it
    ``ord(c) - 29`` more times (that byte may itself be an escaped one).

    :raises GdbstubError: a body ending in ``}``/``*`` or a run with nothing before it.
    """
    if b"}" not in body and b"*" not in body:
        return body
    out = bytearray()
    pos, size = 0, len(body)
    search = _ESCAPE_OR_RLE.search
    while True:
        match = search(body, pos)
        if match is None:
            out += body[pos:]
            return bytes(out)
        at = match.start()
        out += body[pos:at]
        if at + 1 >= size:
            raise GdbstubError(f"gdbstub packet ends inside an escape or run: {body[-16:]!r}")
        arg = body[at + 1]
        if body[at] == 0x7D:
            out.append(arg ^ 0x20)
        else:
            if not out or arg < 29:
                raise GdbstubError(f"gdbstub packet has a bad run-length code at byte {at}")
            out += out[-1:] * (arg - 29)
        pos = at + 2


def parse_thread_id(text: str) -> tuple[int | None, int]:
    """``"p01.02"`` → ``(1, 2)``, ``"02"`` → ``(None, 2)``; ``-1`` means all, ``0`` any.

    :raises GdbstubError: not a thread id.
    """
    try:
        if text[:1] == "p":
            pid, _, tid = text[1:].partition(".")
            return int(pid, 16), (int(tid, 16) if tid else -1)
        return None, int(text, 16)
    except ValueError:
        raise GdbstubError(f"gdbstub sent a malformed thread id {text!r}") from None


@dataclass(frozen=True)
class StopReply:
    """A stop reply (``T``/``S`` packet): why the VM stopped and which vCPU stopped it.

    :ivar signal: GDB signal number (5 TRAP: breakpoint or step; 2 INT: ``\\x03``/connect)
    :ivar thread: gdb thread id (QEMU: cpu_index + 1), ``None`` if the reply names none
    :ivar raw: the reply's payload, e.g. ``"T05thread:p01.02;"``
    """

    signal: int
    thread: int | None
    raw: str


def parse_stop_reply(payload: str) -> StopReply:
    """Parse a ``T``/``S`` stop reply.

    :raises GdbstubError: ``W``/``X`` (the target exited: QEMU's VM is gone) or a payload
        that is not a stop reply.
    """
    kind = payload[:1]
    try:
        signal = int(payload[1:3], 16)
    except ValueError:
        signal = -1
    if kind in ("W", "X") and signal >= 0:
        what = "exited with status" if kind == "W" else "was killed by signal"
        raise GdbstubError(f"gdbstub target {what} {signal} ({payload!r})")
    if kind not in ("T", "S") or signal < 0 or len(payload) < 3:
        raise GdbstubError(f"gdbstub sent {payload!r} where a stop reply was expected")
    thread = None
    if kind == "T":
        _, found, rest = payload.partition("thread:")
        if found:
            thread = parse_thread_id(rest.partition(";")[0])[1]
    return StopReply(signal, thread, payload)


def _is_stop_reply(packet: bytes) -> bool:
    """True for ``T``/``S``/``W``/``X`` + two hex digits (no normal reply starts so)."""
    return (
        len(packet) >= 3
        and packet[0] in b"TSWX"
        and packet[1] in b"0123456789abcdefABCDEF"
        and packet[2] in b"0123456789abcdefABCDEF"
    )


def _is_error_reply(packet: bytes) -> bool:
    """``Enn`` (hex data is even-sized, so a 3-byte ``E..`` is an error) or ``E.text``."""
    return packet[:1] == b"E" and (len(packet) == 3 or packet[:2] == b"E.")


class _Timeout(Exception):
    """Internal: a deadline passed while reading."""


class RspClient:
    """A connection to a gdbstub on a unix socket (one client at a time, not thread-safe).

    Connecting stops the VM (QEMU does so on accept). After the constructor returns, the
    VM is stopped and exactly one stop reply is queued for :meth:`wait_stop`: QEMU's
    unsolicited one, or, when the VM was already paused, the answer of a ``?`` (which
    also clears breakpoints a vanished client left behind).

    :param path: the stub's unix socket
    :param timeout: default deadline in seconds for every reply and stop
    :raises GdbstubError: nothing listens at *path* (the ``OSError`` is its
        ``__cause__``), or the handshake fails.

    :ivar timeout: default deadline in seconds
    :ivar multiprocess: the stub speaks multiprocess thread ids (``p1.2``)
    :ivar packet_size: the stub's ``PacketSize`` (bytes of the largest packet it accepts)
    :ivar features: the qSupported reply as ``{name: value}`` (``"+"``/``"-"`` for flags)
    """

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self.multiprocess = False
        self.packet_size = DEFAULT_PACKET_SIZE
        self.features: dict[str, str] = {}
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._ack_mode = True
        self._last_packet = b""
        self._retransmits = 0
        self._packets_sent = 0
        self._pid = 1
        self._selected: dict[str, int] = {}
        self._stops: deque[StopReply] = deque()
        self._last_stop: StopReply | None = None
        self._running = False
        self._console: list[bytes] = []
        self._tdesc: TargetDescription | None = None

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            # The OSError stays the __cause__: FileNotFoundError/ConnectionRefusedError
            # tell "no stub there" from a stub that fails.
            raise GdbstubError(f"cannot connect to the gdbstub at {path}: {exc}") from exc
        sock.setblocking(False)
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise

    def _handshake(self) -> None:
        reply = self._exchange(QSUPPORTED, None)
        for item in reply.decode("latin-1").split(";"):
            if not item:
                continue
            if "=" in item:
                name, _, value = item.partition("=")
                self.features[name] = value
            else:
                self.features[item[:-1]] = item[-1]
        if "PacketSize" in self.features:
            try:
                self.packet_size = int(self.features["PacketSize"], 16)
            except ValueError:
                raise GdbstubError(f"gdbstub qSupported reply is malformed: {reply!r}") from None
        self.multiprocess = self.features.get("multiprocess") == "+"
        if self.features.get("QStartNoAckMode") == "+":
            self._expect_ok(b"QStartNoAckMode")
            self._ack_mode = False
        # QEMU made its first vCPU the current g/c thread on accept (gdb_chr_event()).
        if self._last_stop is None:
            self._last_stop = parse_stop_reply(self._exchange(b"?", None, stop=True).decode())
            self._stops.append(self._last_stop)
        if self._last_stop.thread is not None:
            self._selected = {"g": self._last_stop.thread, "c": self._last_stop.thread}

    # -- life cycle -------------------------------------------------------------------

    def __enter__(self) -> RspClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else ("running" if self._running else "stopped")
        return f"<RspClient {self.path} {state}>"

    def close(self) -> None:
        """Close the socket (QEMU leaves the VM and its breakpoints as they are)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    @property
    def closed(self) -> bool:
        """True once the connection is closed (by :meth:`close` or an error)."""
        return self._sock is None

    def fileno(self) -> int:
        """The socket's fd, for ``poll()`` while the VM runs (see :attr:`buffered`)."""
        if self._sock is None:
            raise GdbstubError(f"gdbstub connection to {self.path} is closed")
        return self._sock.fileno()

    @property
    def buffered(self) -> bool:
        """True when a stop reply is queued or received bytes wait to be parsed: then
        :meth:`wait_stop` may answer without the fd becoming readable."""
        return bool(self._stops or self._buf.strip(b"+"))

    @property
    def packets_sent(self) -> int:
        """Packets sent so far, retransmissions and ``\\x03`` included, acks not."""
        return self._packets_sent

    @property
    def running(self) -> bool:
        """True between :meth:`resume` and the next stop reply."""
        return self._running

    @property
    def last_stop(self) -> StopReply | None:
        """The most recent stop reply, ``None`` while the VM runs."""
        return None if self._running else self._last_stop

    # -- raw I/O ------------------------------------------------------------------------

    def _die(self, why: str) -> GdbstubError:
        self.close()
        return GdbstubError(f"gdbstub at {self.path}: {why}")

    def _send(self, data: bytes, deadline: float) -> None:
        sock = self._sock
        if sock is None:
            raise GdbstubError(f"gdbstub connection to {self.path} is closed")
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                writable = select.select([], [sock], [], max(remaining, 0))[1]
                if not writable:
                    raise self._die("timed out sending to the stub") from None
                continue
            except OSError as exc:
                raise self._die(f"connection lost while sending ({exc})") from None
            view = view[sent:]

    def _send_packet(self, payload: bytes, deadline: float) -> None:
        packet = frame(payload)
        self._last_packet = packet
        self._retransmits = 0
        self._packets_sent += 1
        self._send(packet, deadline)

    def _fill(self, deadline: float) -> None:
        """Append at least one received byte to the buffer, or raise by *deadline*."""
        sock = self._sock
        if sock is None:
            raise GdbstubError(f"gdbstub connection to {self.path} is closed")
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._poll.poll(remaining * 1000.0):
                    raise _Timeout from None
                continue
            except OSError as exc:
                raise self._die(f"connection lost ({exc})") from None
            if not data:
                raise self._die("the stub closed the connection")
            self._buf += data
            return

    def _acks(self, noise: bytes, deadline: float) -> None:
        """Handle the bytes between packets: ``+`` is ignored, ``-`` retransmits."""
        if self._ack_mode and b"-" in noise and self._last_packet:
            for _ in range(noise.count(b"-")):
                self._retransmits += 1
                if self._retransmits > MAX_RETRANSMITS:
                    raise self._die(f"packet {self._last_packet[:40]!r} rejected repeatedly")
                self._packets_sent += 1
                self._send(self._last_packet, deadline)

    def _read_packet(self, deadline: float) -> bytes:
        """The next packet's decoded payload (acked in ack mode)."""
        buf = self._buf
        while True:
            start = buf.find(b"$")
            if start != 0:
                # Acks (and garbage) before the next packet: handled once, then dropped.
                noise = bytes(buf) if start < 0 else bytes(buf[:start])
                del buf[: len(noise)]
                self._acks(noise, deadline)
                if start < 0:
                    self._fill(deadline)
                    continue
            end = buf.find(b"#", 1)
            if end < 0 or len(buf) < end + 3:
                self._fill(deadline)
                continue
            body = bytes(buf[1:end])
            received = bytes(buf[end + 1 : end + 3])
            del buf[: end + 3]
            try:
                good = int(received, 16) == sum(body) & 0xFF
            except ValueError:
                good = False
            if not good:
                if not self._ack_mode:
                    raise self._die(f"packet with a bad checksum: {body[:40]!r}#{received!r}")
                self._send(b"-", deadline)
                continue
            if self._ack_mode:
                self._send(b"+", deadline)
            return decode_payload(body)

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _exchange(self, payload: bytes, timeout: float | None, stop: bool = False) -> bytes:
        """Send *payload*, return its reply; stop replies and console output met on the
        way are queued. With *stop*, the reply itself is a stop reply (``?``)."""
        if self._running:
            raise GdbstubError(
                f"gdbstub packet {payload[:40].decode('latin-1')!r} not sent: the VM is "
                "running (any byte would stop it); wait_stop() or interrupt() first"
            )
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        self._send_packet(payload, deadline)
        try:
            while True:
                reply = self._read_packet(deadline)
                if _is_stop_reply(reply):
                    if stop:
                        return reply
                    self._queue_stop(reply)
                elif reply[:1] == b"O" and reply != b"OK":
                    self._console.append(reply[1:])
                else:
                    if _is_error_reply(reply):
                        raise GdbstubErrorReply(payload.decode("latin-1"), reply.decode("latin-1"))
                    return reply
        except _Timeout:
            # A late reply would be taken for the next command's: the stream is lost.
            what = payload[:40].decode("latin-1")
            raise self._die(f"no reply to {what!r} within {limit:g} s") from None

    def _queue_stop(self, packet: bytes) -> StopReply:
        reply = parse_stop_reply(packet.decode("latin-1"))
        self._stops.append(reply)
        self._stop_seen(reply)
        return reply

    def _stop_seen(self, reply: StopReply) -> None:
        self._running = False
        self._last_stop = reply
        if reply.thread is not None:
            # QEMU's gdb_vm_state_change() makes the stopping vCPU the g and c thread.
            self._selected = {"g": reply.thread, "c": reply.thread}

    def _expect_ok(self, payload: bytes, timeout: float | None = None) -> None:
        reply = self._exchange(payload, timeout)
        if reply != b"OK":
            what = payload[:40].decode("latin-1")
            if not reply:
                raise GdbstubError(f"gdbstub does not support packet {what!r}")
            raise GdbstubError(f"gdbstub answered {reply[:40]!r} to {what!r}, not OK")

    # -- commands -----------------------------------------------------------------------

    def command(self, payload: str, timeout: float | None = None) -> str:
        """Send the packet *payload* and return the payload of its reply.

        Stop replies arriving meanwhile are queued for :meth:`wait_stop`, ``O`` console
        packets kept for :meth:`monitor`. An empty reply means the stub does not know the
        packet.

        A ``?`` returns its stop reply (and, on QEMU, removes every breakpoint); an ``H``
        packet forgets the thread cached for its operation.

        :raises ValueError: a resuming packet (``c``, ``s``, ``C``, ``S``, ``vCont;``),
            which has no reply: use :meth:`resume`.
        :raises GdbstubErrorReply: the stub answered ``E NN``.
        :raises GdbstubError: the VM is running, no reply within *timeout* seconds (default
            :attr:`timeout`; the connection is then closed), or the connection is lost.
        """
        if payload[:1] in ("c", "s", "C", "S") or payload.startswith("vCont;"):
            raise ValueError(f"packet {payload[:40]!r} resumes the VM: use resume()")
        if payload[:1] == "H":
            self._selected.pop(payload[1:2], None)
        reply = self._exchange(payload.encode("latin-1"), timeout, stop=payload == "?")
        return reply.decode("latin-1")

    def thread_id(self, thread: int) -> str:
        """*thread* as the stub wants it in ``H``/``vCont`` packets (``p1.2`` or ``2``)."""
        tid = "-1" if thread == -1 else f"{thread:x}"
        return f"p{self._pid:x}.{tid}" if self.multiprocess else tid

    def threads(self) -> list[int]:
        """The gdb thread ids of all vCPUs, in the stub's order (QEMU: cpu_index + 1)."""
        ids: list[int] = []
        reply = self._exchange(b"qfThreadInfo", None)
        while reply[:1] == b"m":
            for item in reply[1:].decode("latin-1").split(","):
                pid, tid = parse_thread_id(item)
                if pid is not None:
                    self._pid = pid
                ids.append(tid)
            reply = self._exchange(b"qsThreadInfo", None)
        if reply != b"l":
            raise GdbstubError(f"gdbstub answered {reply[:40]!r} to qfThreadInfo/qsThreadInfo")
        return ids

    def select_thread(self, thread: int, op: str = "g") -> None:
        """Make *thread* the target of *op*: ``g`` (registers, memory, breakpoints) or
        ``c`` (``c``/``s`` packets). No packet if it already is."""
        if self._selected.get(op) == thread:
            return
        self._expect_ok(f"H{op}{self.thread_id(thread)}".encode())
        self._selected[op] = thread

    def read_registers(self, thread: int | None = None) -> bytes:
        """All registers of *thread* (default: the current ``g`` thread) as ``g`` data:
        little-endian, laid out as :meth:`target_description` says (608 bytes on
        QEMU x86-64)."""
        if thread is not None and self._selected.get("g") != thread:
            self.select_thread(thread)
        reply = self._exchange(b"g", None)
        return _unhex(reply.replace(b"x", b"0") if b"x" in reply else reply, "g")

    def write_registers(self, data: bytes, thread: int | None = None) -> None:
        """``G``: write *data* (``g`` layout; a prefix ending on a register boundary
        writes just the registers it covers, see :meth:`TargetDescription.encode_prefix`)."""
        if thread is not None and self._selected.get("g") != thread:
            self.select_thread(thread)
        self._expect_ok(b"G" + binascii.hexlify(data))

    def read_register(self, regnum: int, thread: int | None = None) -> bytes:
        """``p``: register number *regnum* of *thread*, little-endian bytes."""
        if thread is not None and self._selected.get("g") != thread:
            self.select_thread(thread)
        return _unhex(self._exchange(b"p%x" % regnum, None), f"p{regnum:x}")

    def write_register(self, regnum: int, data: bytes, thread: int | None = None) -> None:
        """``P``: set register number *regnum* of *thread* to *data* (little-endian)."""
        if thread is not None and self._selected.get("g") != thread:
            self.select_thread(thread)
        self._expect_ok(b"P%x=%s" % (regnum, binascii.hexlify(data)))

    def read_memory(self, addr: int, length: int) -> bytes:
        """``m``: *length* bytes at guest-virtual *addr*, as the current ``g`` vCPU sees it
        (its CR3), split into packets the stub accepts.

        :raises GdbstubErrorReply: part of the range is not mapped (QEMU: ``E14``).
        """
        chunk = max((self.packet_size - 16) // 2, 1)
        if length <= chunk:
            return _unhex(self._exchange(b"m%x,%x" % (addr, length), None), "m")
        parts = []
        for offset in range(0, length, chunk):
            size = min(chunk, length - offset)
            parts.append(_unhex(self._exchange(b"m%x,%x" % (addr + offset, size), None), "m"))
        return b"".join(parts)

    def insert_breakpoint(self, addr: int, kind: int = 1, type: int = 0) -> None:
        """``Z``: insert a breakpoint (type 0 software, 1 hardware, 2/3/4 watchpoints
        write/read/access; *kind* is the length in bytes) at guest-virtual *addr*.
        Under TCG this flushes QEMU's translation cache (milliseconds).

        :raises GdbstubErrorReply: refused (QEMU/KVM: a 5th hardware breakpoint, E22).
        """
        self._expect_ok(b"Z%d,%x,%x" % (type, addr, kind))

    def remove_breakpoint(self, addr: int, kind: int = 1, type: int = 0) -> None:
        """``z``: remove a breakpoint inserted with the same *addr*, *kind*, *type*."""
        self._expect_ok(b"z%d,%x,%x" % (type, addr, kind))

    # -- execution ------------------------------------------------------------------------

    def resume(self, step_thread: int | None = None) -> None:
        """Resume every vCPU (``vCont;c``) or single-step only *step_thread*
        (``vCont;s:THREAD``; the other vCPUs stay stopped). Returns at once: the stub
        answers with the next stop reply, see :meth:`wait_stop`. Stop replies still
        queued are dropped (they describe the stop this ends)."""
        if step_thread is None:
            payload = b"vCont;c"
        else:
            payload = b"vCont;s:" + self.thread_id(step_thread).encode()
        if self._running:
            raise GdbstubError("gdbstub resume: the VM is already running")
        self._stops.clear()
        self._selected = {}
        self._send_packet(payload, self._deadline(None))
        self._running = True

    def wait_stop(self, timeout: float | None = None) -> StopReply | None:
        """The next stop reply: a queued one, else the next to arrive within *timeout*
        seconds (default :attr:`timeout`; 0 polls). ``None`` if none came (the VM runs on).

        :raises GdbstubError: the target exited (``W``/``X``), an unexpected packet, or
            the connection is lost.
        """
        if self._stops:
            return self._stops.popleft()
        deadline = self._deadline(timeout)
        try:
            while True:
                packet = self._read_packet(deadline)
                if _is_stop_reply(packet):
                    reply = parse_stop_reply(packet.decode("latin-1"))
                    self._stop_seen(reply)
                    return reply
                if packet[:1] == b"O" and packet != b"OK":
                    self._console.append(packet[1:])
                    continue
                raise self._die(f"unexpected packet {packet[:40]!r} while waiting for a stop")
        except _Timeout:
            return None

    def step(self, thread: int, timeout: float | None = None) -> StopReply:
        """Single-step *thread* alone and wait for its stop.

        :raises GdbstubError: no stop within *timeout* (the vCPU is left running).
        """
        self.resume(step_thread=thread)
        reply = self.wait_stop(timeout)
        if reply is None:
            raise GdbstubError(f"gdbstub single-step of thread {thread} did not stop in time")
        return reply

    def interrupt(self, timeout: float | None = None) -> StopReply:
        """Stop the VM (``\\x03``) and return the stop reply. If the VM is already stopped,
        the queued or last stop reply is returned without sending anything (QEMU ignores
        ``\\x03`` then).

        :raises GdbstubError: no stop within *timeout*.
        """
        if self._stops:
            return self._stops.popleft()
        if not self._running and self._last_stop is not None:
            return self._last_stop
        self._packets_sent += 1
        self._send(b"\x03", self._deadline(timeout))
        reply = self.wait_stop(timeout)
        if reply is None:
            raise self._die("the VM did not stop on \\x03 in time")
        return reply

    def stop_status(self) -> StopReply:
        """``?``: why the VM is stopped. **QEMU removes every breakpoint on ``?``.**"""
        reply = parse_stop_reply(self._exchange(b"?", None, stop=True).decode("latin-1"))
        self._last_stop = reply
        return reply

    # -- queries --------------------------------------------------------------------------

    def monitor(self, command: str) -> str:
        """Run a QEMU monitor (HMP) command through ``qRcmd`` and return its output text.

        :raises GdbstubError: the stub has no ``qRcmd`` or answered otherwise than OK.
        """
        self._console.clear()
        self._expect_ok(b"qRcmd," + binascii.hexlify(command.encode()))
        output = b"".join(_unhex(part, "O") for part in self._console)
        self._console.clear()
        return output.decode("utf-8", errors="replace")

    def fetch_annex(self, annex: str, object: str = "features") -> str:
        """The whole of ``qXfer:<object>:read:<annex>``, read in packet-sized pieces."""
        chunk = max(self.packet_size - 16, 16)
        parts: list[bytes] = []
        offset = 0
        while True:
            reply = self._exchange(
                b"qXfer:%s:read:%s:%x,%x" % (object.encode(), annex.encode(), offset, chunk), None
            )
            kind = reply[:1]
            if kind not in (b"m", b"l"):
                raise GdbstubError(f"gdbstub answered {reply[:40]!r} to qXfer {object} {annex}")
            parts.append(reply[1:])
            offset += len(reply) - 1
            if kind == b"l" or len(reply) == 1:
                return b"".join(parts).decode("utf-8", errors="replace")

    def target_description(self) -> TargetDescription:
        """The stub's register layout (``target.xml`` and its includes), read once."""
        if self._tdesc is None:
            self._tdesc = TargetDescription.parse(self.fetch_annex)
        return self._tdesc

    def detach(self) -> None:
        """Detach (QEMU removes every breakpoint and resumes the VM), then close.

        A running VM is interrupted first (a ``D`` sent while it runs would be lost).
        """
        try:
            if self._running:
                self.interrupt()
            self._expect_ok(b"D;%x" % self._pid if self.multiprocess else b"D")
        finally:
            self.close()


def _unhex(data: bytes, packet: str) -> bytes:
    try:
        return binascii.unhexlify(data)
    except (binascii.Error, ValueError):
        raise GdbstubError(f"gdbstub reply to {packet!r} is not hex: {data[:40]!r}") from None
