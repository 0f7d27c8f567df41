"""The bounded on-disk spool: events that could not be published yet, in order.

A directory (mode 0700) of segment files (mode 0600) named ``%012d.seg`` in publishing
order. A segment starts with the line ``# libvirt-nitro spool 1`` and holds one event a
line::

    SUBJECT <TAB> MSG-ID <TAB> PAYLOAD <LF>

(a subject and a message id have neither tab nor newline, and a JSON payload has no raw
newline). ``cursor`` holds ``SEGMENT INDEX``: the events of the first segment before INDEX
were published. A line cut short by a crash (no final LF) is ignored. The spool holds at
most *max_bytes* bytes of segments: an event past that bound is dropped and counted
(:attr:`Spool.dropped`). What the spool holds outlives the process: the next sink of the
same domain publishes it first.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["Spool", "Entry", "encode_entry", "decode_segment", "HEADER"]

#: One spooled event: (subject, message id, payload).
Entry = tuple[str, str, bytes]
#: The first line of every segment.
HEADER = b"# libvirt-nitro spool 1\n"


def encode_entry(entry: Entry) -> bytes:
    """The line of *entry*.

    :raises ValueError: the subject or id holds a tab or newline, or the payload a newline.
    """
    subject, msg_id, payload = entry
    if any(c in subject + msg_id for c in "\t\n") or b"\n" in payload:
        raise ValueError("a spool entry may not hold a newline (nor a tab outside the payload)")
    return b"%s\t%s\t%s\n" % (subject.encode(), msg_id.encode(), payload)


def decode_segment(data: bytes) -> list[Entry]:
    """The entries of a segment's bytes; a last line without LF (a torn write) is left out.

    :raises ValueError: not a spool segment (no header).
    """
    if not data.startswith(HEADER):
        raise ValueError("not a libvirt-nitro spool segment")
    lines = data[len(HEADER) :].split(b"\n")
    entries = []
    for line in lines[:-1]:  # the last piece follows the last LF: empty or torn
        subject, _, rest = line.partition(b"\t")
        msg_id, _, payload = rest.partition(b"\t")
        entries.append((subject.decode(), msg_id.decode(), payload))
    return entries


class Spool:
    """A FIFO of entries on disk in *directory*, at most *max_bytes* bytes, in segments of
    about *segment_bytes* bytes.

    :meth:`append` adds at the tail (dropping past the bound); :meth:`peek` reads from the
    head without consuming; :meth:`commit` consumes what was read. Single-threaded.
    """

    def __init__(self, directory: str | os.PathLike, max_bytes: int, segment_bytes: int = 1 << 20):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 4 or 4096))
        #: Events dropped because the spool was full.
        self.dropped = 0
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self._segments = sorted(
            int(path.stem) for path in self.directory.glob("*.seg") if path.stem.isdigit()
        )
        self._sizes = {seg: self._path(seg).stat().st_size for seg in self._segments}
        self._bytes = sum(self._sizes.values())
        self._writer: int = -1  # fd of the tail segment being written
        self._head: list[Entry] | None = None  # the entries of the first segment, once read
        self._index = 0  # first unpublished entry of the head segment
        self._count = 0  # entries held (known once segments are counted)
        self._read_cursor()
        self._count = sum(len(self._entries(seg)) for seg in self._segments) - self._index

    # ------------------------------------------------------------ state
    def __len__(self) -> int:
        """The number of entries held."""
        return self._count

    @property
    def bytes(self) -> int:
        """Bytes of segment files on disk."""
        return self._bytes

    def _path(self, seg: int) -> Path:
        return self.directory / f"{seg:012d}.seg"

    def _entries(self, seg: int) -> list[Entry]:
        try:
            return decode_segment(self._path(seg).read_bytes())
        except (OSError, ValueError):
            return []

    def _read_cursor(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            seg, index = map(int, (self.directory / "cursor").read_text().split())
            if self._segments and seg == self._segments[0]:
                self._index = index

    def _write_cursor(self) -> None:
        if not self._segments:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / "cursor").unlink()
            return
        path = self.directory / "cursor"
        tmp = self.directory / "cursor.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, f"{self._segments[0]} {self._index}\n".encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)

    # ------------------------------------------------------------ tail
    def append(self, entries: list[Entry]) -> int:
        """Add *entries* at the tail, in order; returns how many were kept (the others, past
        the bound, are counted in :attr:`dropped`)."""
        kept = 0
        for entry in entries:
            line = encode_entry(entry)
            if self.bytes + len(line) + len(HEADER) > self.max_bytes:
                self.dropped += len(entries) - kept
                break
            self._write(line)
            kept += 1
        self._count += kept
        return kept

    def _write(self, line: bytes) -> None:
        if self._writer < 0 or self._sizes[self._segments[-1]] + len(line) > self.segment_bytes:
            self._open_segment()
        os.write(self._writer, line)
        self._sizes[self._segments[-1]] += len(line)
        self._bytes += len(line)

    def _open_segment(self) -> None:
        self._close_writer()
        seg = self._segments[-1] + 1 if self._segments else 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(self._path(seg), flags, 0o600)
        os.fchmod(fd, 0o600)
        os.write(fd, HEADER)
        self._segments.append(seg)
        self._sizes[seg] = len(HEADER)
        self._bytes += len(HEADER)
        self._writer = fd

    def _close_writer(self) -> None:
        if self._writer >= 0:
            os.close(self._writer)
            self._writer = -1

    # ------------------------------------------------------------ head
    def peek(self, limit: int) -> list[Entry]:
        """Up to *limit* entries from the head (of the first segment only), oldest first,
        not consumed; empty only when the spool is."""
        if not self._segments:
            return []
        if self._head is None:
            if self._writer >= 0 and len(self._segments) == 1:
                self._close_writer()  # the head is read whole: later appends start a new one
            self._head = self._entries(self._segments[0])
        return self._head[self._index : self._index + limit]

    def commit(self, count: int) -> None:
        """Consume *count* entries (those :meth:`peek` returned); a segment read to its end
        is deleted."""
        assert self._head is not None or count == 0
        self._index += count
        self._count -= count
        if self._head is not None and self._index >= len(self._head):
            seg = self._segments.pop(0)
            self._bytes -= self._sizes.pop(seg)
            with contextlib.suppress(FileNotFoundError):
                self._path(seg).unlink()
            self._head, self._index = None, 0
        self._write_cursor()

    def close(self) -> None:
        """Close the tail segment (what is held stays on disk)."""
        self._close_writer()
