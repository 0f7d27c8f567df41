"""Event files rotated by size, written a whole line at a time."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["RotatingWriter"]


class RotatingWriter:
    """A text stream on *path* rotated by size: *path* holds at most *max_bytes* bytes
    (a line longer than that gets a file of its own), older lines move to ``path.1`` …
    ``path.{max_files-1}``, the oldest file is dropped. Each :meth:`write` is one
    ``write(2)`` on an ``O_APPEND`` fd, so readers see whole lines at once.

    The file is created 0600 (events carry guest data); a missing parent directory is
    created 0700.
    """

    def __init__(self, path: str | Path, max_bytes: int, max_files: int):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.rotations = 0
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = -1
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self._fd).st_size

    def write(self, text: str) -> int:
        """Append *text* (whole lines), rotating first if it would not fit."""
        data = text.encode()
        if self.size and self.size + len(data) > self.max_bytes:
            self.rotate()
        os.write(self._fd, data)
        self.size += len(data)
        return len(text)

    def rotate(self) -> None:
        """Shift ``path`` → ``path.1`` → … and start an empty ``path``."""
        os.close(self._fd)
        if self.max_files > 1:
            for index in range(self.max_files - 1, 0, -1):
                source = self.path if index == 1 else Path(f"{self.path}.{index - 1}")
                if source.exists():
                    os.replace(source, f"{self.path}.{index}")
        else:
            self.path.unlink(missing_ok=True)
        self.rotations += 1
        self._open()

    def flush(self) -> None:
        """Nothing is buffered (each write is a system call)."""

    def close(self) -> None:
        """Close the file; idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
