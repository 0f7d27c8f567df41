"""Compare libvirt-nitro's lines for one strace test with what the test program printed.

Pure Python (no guest, no libvirt): ``tests/test_strace_oracle.py`` unit-tests it alone.

strace's tests print on stdout the exact log strace must write for them, which strace's
harness compares with ``diff``. The oracle compares libvirt-nitro's lines for the test's
process the same way, after these normalisations, and nothing else:

- **column alignment**: strace pads a line with spaces after the closing parenthesis up to
  column ``-a`` (40 by default) before ``= ``; libvirt-nitro never pads. On both sides
  ``) <spaces>= `` before the return value becomes ``) = ``.
- **exit notes**: the expected output ends with ``+++ exited with N +++`` (or ``+++ killed
  by SIGX +++``), which strace prints whatever ``-e trace=`` says but libvirt-nitro only
  after an ``exit_group`` it traced (and never for a signal): the final note is taken off
  both sides and the expected one checked against the program's exit status instead.
- the filters of strace's harness for that test, applied to libvirt-nitro's lines as the
  harness applies them to strace's log (:class:`~tests.oracle.catalog.Spec`'s
  ``start_from``, ``drop_through``, ``drop_matching``).

Signal notes (``--- SIGCHLD {...} ---``) are *not* normalised away: libvirt-nitro cannot see
signal delivery, and a test that expects them fails.
"""

from __future__ import annotations

import difflib
import re
import signal
from dataclasses import dataclass

__all__ = [
    "Outcome",
    "normalise",
    "split_exit_note",
    "filter_ours",
    "compare",
    "exit_status_of_note",
]

#: ``) = `` with strace's column padding in between: the call's closing parenthesis (the
#: last one followed by spaces and "= ") and the return value.
_ALIGNED = re.compile(r"^(.*\))\s+= (.*)$", re.S)
_EXIT_NOTE = re.compile(
    r"^\+\+\+ (?:exited with (\d+)|killed by (SIG\w+)(?: \(core dumped\))?) \+\+\+$"
)


def normalise(line: str) -> str:
    """*line* without strace's column padding before ``= ``."""
    match = _ALIGNED.match(line)
    return f"{match.group(1)} = {match.group(2)}" if match else line


def exit_status_of_note(note: str) -> int | None:
    """The shell exit status an exit note stands for (``exited with 3`` -> 3, ``killed by
    SIGKILL`` -> 137), None for a line that is not an exit note."""
    match = _EXIT_NOTE.match(note)
    if not match:
        return None
    if match.group(1) is not None:
        return int(match.group(1))
    try:
        return 128 + signal.Signals[match.group(2)].value
    except KeyError:
        return None


def split_exit_note(lines: list[str]) -> tuple[list[str], str | None]:
    """(*lines* without a final exit note, that note or None)."""
    if lines and exit_status_of_note(lines[-1]) is not None:
        return lines[:-1], lines[-1]
    return lines, None


def filter_ours(
    lines: list[str],
    start_from: str | None = None,
    drop_through: str | None = None,
    drop_matching: str | None = None,
    uniq: bool = False,
) -> list[str]:
    """libvirt-nitro's *lines* filtered as strace's harness filters its log: from the first
    line matching *start_from* on (``sed -n '/RE/,$p'``: nothing when none does), after the
    first line matching *drop_through* (``sed '0,/RE/d'``: nothing when none does), without
    the lines matching *drop_matching* (``grep -v``), with *uniq* no line repeating the one
    before (``uniq``)."""
    if start_from is not None:
        pattern = re.compile(start_from)
        first = next((i for i, line in enumerate(lines) if pattern.search(line)), len(lines))
        lines = lines[first:]
    if drop_through is not None:
        pattern = re.compile(drop_through)
        first = next((i for i, line in enumerate(lines) if pattern.search(line)), len(lines))
        lines = lines[first + 1 :]
    if drop_matching is not None:
        pattern = re.compile(drop_matching)
        lines = [line for line in lines if not pattern.search(line)]
    if uniq:
        lines = [line for i, line in enumerate(lines) if i == 0 or line != lines[i - 1]]
    return lines


@dataclass(frozen=True)
class Outcome:
    """One test's comparison: *status* is ``pass``, ``fail`` or ``skip`` (the program
    exited 77: it cannot run here, as strace's harness counts it); *reason* is one line,
    *diff* the unified diff (expected, then libvirt-nitro's)."""

    status: str
    reason: str = ""
    diff: str = ""

    @property
    def passed(self) -> bool:
        """True for ``pass``."""
        return self.status == "pass"


def compare(
    expected: str,
    ours: list[str],
    exit_status: int | None,
    *,
    start_from: str | None = None,
    drop_through: str | None = None,
    drop_matching: str | None = None,
    uniq: bool = False,
    stderr: str = "",
) -> Outcome:
    """Compare the program's stdout *expected* with libvirt-nitro's lines *ours* for its
    process ("name(args) = ret", in order) given how the program ended (*exit_status*: the
    shell's ``$?``; None if unknown)."""
    if exit_status == 77:
        why = stderr.strip().splitlines()[-1] if stderr.strip() else "exit status 77"
        return Outcome("skip", f"the program skips here: {why}")
    want, note = split_exit_note(expected.splitlines())
    want = [normalise(line) for line in want]
    got = [normalise(line) for line in ours]
    got = filter_ours(got, start_from, drop_through, drop_matching, uniq)
    got, _ = split_exit_note(got)
    if note is not None and exit_status is not None:
        if exit_status_of_note(note) != exit_status:
            detail = f"; stderr: {stderr.strip().splitlines()[-1]}" if stderr.strip() else ""
            return Outcome(
                "fail", f"the program ended with status {exit_status}, expected '{note}'{detail}"
            )
    elif note is None and exit_status not in (None, 0):
        detail = f": {stderr.strip().splitlines()[-1]}" if stderr.strip() else ""
        return Outcome("fail", f"the program failed with status {exit_status}{detail}")
    if got == want:
        return Outcome("pass")
    diff = "\n".join(
        difflib.unified_diff(want, got, "expected (program)", "libvirt-nitro", lineterm="", n=1)
    )
    return Outcome("fail", _first_difference(want, got), diff)


def _first_difference(want: list[str], got: list[str]) -> str:
    """One line saying where *got* first differs from *want*."""
    for i, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return f"line {i + 1}: expected {_short(a)}, got {_short(b)}"
    if len(got) < len(want):
        return f"line {len(got) + 1}: expected {_short(want[len(got)])}, got nothing"
    return f"line {len(want) + 1}: unexpected {_short(got[len(want)])}"


def _short(line: str, width: int = 120) -> str:
    return repr(line if len(line) <= width else line[: width - 3] + "...")
