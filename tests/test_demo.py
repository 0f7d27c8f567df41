"""The README's first command, ``bash scripts/demo``, as a newcomer runs it: from cold
caches it shows the guest's system calls as strace lines, every time (the workload starts
once the traps are armed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from libvirt_nitro.linux.layout import CACHE_DIR
from libvirt_nitro.testing.guest import TestGuest

ROOT = Path(__file__).resolve().parents[1]


def test_demo_from_cold_caches_prints_strace_lines(conn) -> None:
    import libvirt

    shutil.rmtree(CACHE_DIR, ignore_errors=True)  # the guest kernel's layout, read again
    name = f"nitro-test-demo-{os.getpid()}"
    try:
        done = subprocess.run(
            ["bash", "scripts/demo", name], capture_output=True, text=True, cwd=ROOT, timeout=900
        )
    finally:
        try:
            TestGuest(conn.lookupByName(name), None).destroy()
        except libvirt.libvirtError:
            pass  # never started
    assert done.returncode == 0, done.stderr
    assert "demo: traps armed" in done.stderr
    calls = [line for line in done.stdout.splitlines() if line.startswith("[pid ")]
    opens = [line for line in calls if " workload] openat(" in line and "/nitro-marker" in line]
    assert len(opens) >= 3, done.stdout[-3000:]  # one per workload run
    assert "Traceback" not in done.stderr
