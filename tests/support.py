"""Helpers shared by the test modules."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

#: Set by .ci/run: a missing requirement is then a failure, never a skip.
REQUIRE_ALL = os.environ.get("LIBVIRT_NITRO_REQUIRE_ALL") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip the calling test (fail it under LIBVIRT_NITRO_REQUIRE_ALL=1) unless *condition*.

    Use only for a requirement the machine may lack (root, /dev/kvm, libvirtd), never to
    hide a bug.
    """
    if condition:
        return
    message = f"Requirement not met: {reason}"
    if REQUIRE_ALL:
        pytest.fail(message + " (LIBVIRT_NITRO_REQUIRE_ALL=1)", pytrace=False)
    pytest.skip(message)


def wait_for(
    probe: Callable[[], T | None],
    what: str,
    timeout: float = 30.0,
    interval: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll *probe* until it returns something truthy; fail naming *what* after *timeout* s
    (with *detail()*, what was seen instead, in the failure message)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            seen = f"; seen:\n{detail()}" if detail else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{seen}", pytrace=False)
        time.sleep(interval)
