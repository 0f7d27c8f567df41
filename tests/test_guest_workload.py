"""The test bed itself: the guest's workload makes its known sequence and reports it."""

from __future__ import annotations

import errno
import signal


def test_sequence_reports_each_step(tcg_guest) -> None:
    result = tcg_guest.run("sequence")
    values = result.values
    assert result.exit_code == 0, result.output
    assert values["getpid_count"] == "3" and values["getpid"] == values["pid"]
    assert values["openat_path"] == "/nitro-marker" and int(values["openat"]) >= 3
    assert values["write"] == str(len("nitro-marker-write\n"))
    assert values["nosys"] == "-1" and values["nosys_errno"] == str(errno.ENOSYS)
    assert values["fork_child_exit"] == "7"
    assert values["ud2_child_signal"] == str(int(signal.SIGILL))


def test_ud2_kills_with_sigill(tcg_guest) -> None:
    result = tcg_guest.run("/bin/workload", "ud2")  # ud2 in a grandchild, reported by the child
    assert result.values["ud2_child_signal"] == str(int(signal.SIGILL))


def test_each_command_runs_in_a_new_process(tcg_guest) -> None:
    first = tcg_guest.run("getpid", "1").values["getpid"]
    second = tcg_guest.run("getpid", "1").values["getpid"]
    assert first != second


def test_unknown_verb_is_reported(tcg_guest) -> None:
    result = tcg_guest.run("frobnicate")
    assert result.exit_code == 2 and result.output[0].startswith("verbs:")
